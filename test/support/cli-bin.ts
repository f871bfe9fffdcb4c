/*
 * The `sd-activate` command the tests and benches run: the file package.json's `bin` names, read
 * from package.json so that the two cannot drift apart. That file (dist/pkg/cli/main.js, the
 * bundle `npm run build` makes) is what `npx sd-activate` runs and what the package ships.
 * dist/src/cli/main.js, tsc's unbundled output, is neither: it is not in the package, and it once
 * found the native addon where the bundle did not, so that every test passed while the command
 * users run failed. test/package/ runs the bin of the installed tarball, as users do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (this file is dist/test/support/cli-bin.js). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The path of package.json's `bin` for `sd-activate`, absolute, in this repository. */
export const CLI = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['sd-activate']!);
