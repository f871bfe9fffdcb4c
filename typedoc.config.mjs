// TypeDoc: the API reference, from the TSDoc comments, one module per subpath of the exports map.
// `npm run docs` writes it to docs/api (generated, not committed: see .gitignore).
//
// The entry points are read from package.json's exports, so a new subpath is documented without
// touching this file; each module is named after its import specifier (`sd-activate/http`).
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

/** `./dist/adapters/http.d.ts` -> `./adapters/http.ts` (tsconfig: rootDir ".", outDir "dist"). */
const sourceOf = (types) => types.replace(/^\.\/dist\//, './').replace(/\.d\.ts$/, '.ts');

const modules = Object.entries(pkg.exports)
  .filter(([, value]) => typeof value === 'object' && value.types)
  .map(([subpath, value]) => ({ name: subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`, source: sourceOf(value.types) }));

/** @type {Partial<import('typedoc').TypeDocOptions> & { subpathNames: Record<string, string> }} */
export default {
  name: pkg.name,
  entryPoints: modules.map((m) => m.source),
  tsconfig: './tsconfig.json',
  out: './docs/api',
  readme: 'none',
  plugin: ['./scripts/typedoc-subpath-names.mjs'],
  subpathNames: Object.fromEntries(modules.map((m) => [m.source, m.name])),
  // No public repository address to link sources to (clones here have none as their remote).
  disableSources: true,
  excludePrivate: true,
  excludeInternal: true,
  sort: ['kind', 'instance-first', 'alphabetical-ignoring-documents'],
  navigationLinks: { 'systemd man pages': 'https://www.freedesktop.org/software/systemd/man/latest/' },
  // Warnings (a type the API uses but no subpath exports, a link to something undocumented) are
  // printed for the authors to fix; errors fail the run.
  treatWarningsAsErrors: false,
  validation: { notExported: true, invalidLink: true, notDocumented: false },
};
