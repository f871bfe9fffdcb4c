import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/*
 * The house rules of src/, read from the sources themselves: which folder may import which, no
 * import cycle (type-only imports included), the start-up rule for what a service loads, and the
 * size of a file.
 * Each folder's README.md says the same in words.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Where a file lives: its folder under src/, or the entry points and adapters. */
type Area = 'core' | 'native' | 'shared' | 'service' | 'manager' | 'cli' | 'index' | 'testing' | 'adapters';

/** What each area may import, besides itself. */
const ALLOWED: Record<Area, readonly Area[]> = {
  core: [],
  native: ['core'],
  shared: ['core', 'native'],
  service: ['core', 'native', 'shared'],
  manager: ['core', 'native', 'shared'],
  cli: ['core', 'native', 'shared', 'service', 'manager'],
  index: ['core', 'native', 'shared', 'service'],
  // The test library runs functions in children that import the package's index.
  testing: ['core', 'native', 'shared', 'manager', 'index'],
  // The adapters use the public API only.
  adapters: ['index'],
};

/** The longest a source file may be: small files about one thing. */
const MAX_LINES = 400;

interface SourceFile {
  path: string;
  area: Area;
  /** Relative imports resolved to source paths, with whether they are type-only or dynamic. */
  imports: Array<{ target: string; typeOnly: boolean; dynamic: boolean; specifier: string }>;
  /** `node:` modules imported by value with a static import. */
  builtins: string[];
  lines: number;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function areaOf(path: string): Area {
  const rel = relative(ROOT, path);
  if (rel.startsWith('adapters/')) return 'adapters';
  if (rel === 'src/index.ts') return 'index';
  if (rel === 'src/testing.ts') return 'testing';
  const folder = rel.split('/')[1];
  if (folder === 'core' || folder === 'native' || folder === 'shared' || folder === 'service' || folder === 'manager' || folder === 'cli') return folder;
  throw new Error(`${rel} is in no known folder of src/: add it to one (see src/README.md)`);
}

function read(path: string): SourceFile {
  const text = readFileSync(path, 'utf8');
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.ES2022, true);
  const imports: SourceFile['imports'] = [];
  const builtins: string[] = [];
  const add = (specifier: string, typeOnly: boolean, dynamic: boolean): void => {
    if (specifier.startsWith('node:')) {
      if (!typeOnly && !dynamic) builtins.push(specifier);
      return;
    }
    if (!specifier.startsWith('.')) return;
    imports.push({ target: resolve(dirname(path), specifier.replace(/\.js$/, '.ts')), typeOnly, dynamic, specifier });
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      let typeOnly = false;
      if (ts.isImportDeclaration(node)) {
        const clause = node.importClause;
        typeOnly =
          clause !== undefined &&
          (clause.isTypeOnly ||
            (clause.name === undefined &&
              clause.namedBindings !== undefined &&
              ts.isNamedImports(clause.namedBindings) &&
              clause.namedBindings.elements.length > 0 &&
              clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      } else {
        typeOnly = node.isTypeOnly;
      }
      add(node.moduleSpecifier.text, typeOnly, false);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) add(arg.text, false, true);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal.text, true, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { path, area: areaOf(path), imports, builtins, lines: text.split('\n').length };
}

const files = new Map<string, SourceFile>();
for (const path of [...walk(join(ROOT, 'src')), ...walk(join(ROOT, 'adapters'))]) files.set(path, read(path));
const rel = (path: string): string => relative(ROOT, path);

describe('layout of src/', function () {
  it('every relative import names a source file', function () {
    const missing: string[] = [];
    for (const file of files.values()) for (const i of file.imports) if (!files.has(i.target)) missing.push(`${rel(file.path)} -> ${i.specifier}`);
    expect(missing).to.deep.equal([]);
  });

  it('imports run one way: core <- native <- shared <- service, manager <- cli; adapters use the index only', function () {
    const wrong: string[] = [];
    for (const file of files.values()) {
      for (const i of file.imports) {
        const target = files.get(i.target);
        if (!target || target.area === file.area) continue;
        if (!ALLOWED[file.area].includes(target.area)) wrong.push(`${rel(file.path)} (${file.area}) imports ${rel(target.path)} (${target.area})`);
      }
    }
    expect(wrong).to.deep.equal([]);
  });

  it('has no import cycle, type-only imports included', function () {
    // Tarjan's strongly connected components over every import.
    let counter = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const cycles: string[][] = [];
    const connect = (v: string): void => {
      index.set(v, counter);
      low.set(v, counter++);
      stack.push(v);
      onStack.add(v);
      for (const { target } of files.get(v)!.imports) {
        if (!files.has(target)) continue;
        if (!index.has(target)) {
          connect(target);
          low.set(v, Math.min(low.get(v)!, low.get(target)!));
        } else if (onStack.has(target)) {
          low.set(v, Math.min(low.get(v)!, index.get(target)!));
        }
      }
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(rel(w));
        } while (w !== v);
        const selfImport = files.get(v)!.imports.some((i) => i.target === v);
        if (component.length > 1 || selfImport) cycles.push(component.sort());
      }
    };
    for (const path of files.keys()) if (!index.has(path)) connect(path);
    expect(cycles).to.deep.equal([]);
  });

  it("what a service loads at start-up imports no node: module by value (src/core/builtins.ts says why)", function () {
    // Everything the index reaches through static imports, type-only ones aside.
    const reached = new Set<string>();
    const visit = (path: string): void => {
      if (reached.has(path)) return;
      reached.add(path);
      for (const i of files.get(path)?.imports ?? []) if (!i.typeOnly && !i.dynamic) visit(i.target);
    };
    visit(join(ROOT, 'src', 'index.ts'));
    for (const adapter of ['net', 'dgram', 'http']) visit(join(ROOT, 'adapters', `${adapter}.ts`));
    const offenders = [...reached].flatMap((path) => (files.get(path)?.builtins ?? []).map((b) => `${rel(path)} imports ${b}`));
    expect(offenders).to.deep.equal([]);
    // The rule is not empty: the index does reach the service side.
    expect([...reached].some((path) => rel(path).startsWith('src/service/'))).to.equal(true);
  });

  it(`no source file is over ${MAX_LINES} lines`, function () {
    const long = [...files.values()].filter((f) => f.lines > MAX_LINES).map((f) => `${rel(f.path)}: ${f.lines}`);
    expect(long).to.deep.equal([]);
  });
});
