// Bundles the compiled entry points (dist/src, dist/adapters) into dist/pkg, the JavaScript the
// package exports: a service loads a couple of files for `sd-activate` instead of one per source module
// (each costs start-up time; `npm run bench` measures it). The adapters, the CLI and
// sd-activate/testing reach the library's public API through the package's own name, so every
// entry point shares the one copy of its state (the inherited fds are read once per process).
// Types stay tsc's own .d.ts files beside the unbundled output.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';

/** `../src/index.js` from an adapter becomes `sd-activate`, resolved at run time to dist/pkg/index.js. */
const selfReference = {
  name: 'self-reference',
  setup(b) {
    b.onResolve({ filter: /\/src\/index\.js$/ }, (args) =>
      args.kind === 'entry-point' ? undefined : { path: 'sd-activate', external: true },
    );
  },
};

/**
 * The upgrade and worker-pool code, loaded with import() on first use, stays in files of its own:
 * `./upgrade-impl.js` beside index.js. They get the library's internals as an argument
 * (src/service/internals.ts), so they share no code with the index, and a service loads the index as one file.
 */
const LAZY = ['upgrade-impl', 'worker-pool-impl'];
const lazyExternal = {
  name: 'lazy-external',
  setup(b) {
    b.onResolve({ filter: new RegExp(`/(${LAZY.join('|')})\\.js$`) }, (args) => (args.kind === 'entry-point' ? undefined : { path: args.path, external: true }));
  },
};

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Dependencies stay dependencies, resolved from node_modules at run time (and loaded lazily).
  packages: 'external',
  // One file per entry point: each costs start-up time, so no shared chunks.
  splitting: false,
  logLevel: 'warning',
  plugins: [selfReference, lazyExternal],
  metafile: true,
};

rmSync('dist/pkg', { recursive: true, force: true });
const adapters = {
  net: 'dist/adapters/net.js',
  dgram: 'dist/adapters/dgram.js',
  http: 'dist/adapters/http.js',
  express: 'dist/adapters/express.js',
  fastify: 'dist/adapters/fastify.js',
  ws: 'dist/adapters/ws.js',
};
const main = await build({ ...common, outdir: 'dist/pkg', entryPoints: { index: 'dist/src/index.js' } });
// The adapters reach the library through the package's own name (see selfReference).
await build({ ...common, outdir: 'dist/pkg', entryPoints: adapters });
// Sits beside index.js (src/native/addon.ts finds the package root above dist/ from either).
const lazy = await build({ ...common, outdir: 'dist/pkg', entryPoints: Object.fromEntries(LAZY.map((n) => [n, `dist/src/service/${n}.js`])) });
// A module in both would be two copies of its state (the inherited fds, the notify socket) in one
// process. These may be copied: constants and Node's built-in modules; errors.js (every copy of
// SystemdError passes instanceof); native.js (its copies share one loaded addon per install);
// sockaddr.js (pure encoding and decoding); drain.js and stop.js (the one stop path of lifecycle() and
// upgrader(): classes and functions, no module state); idle.js (the same); runtime.js (stateless checks); quote.js (how
// messages show inputs: stateless); notify-receiver.js (only the worker pool uses it: kept out of the
// index, which every service compiles at start-up).
const shareable = new Set([
  'dist/src/core/variables.js',
  'dist/src/core/builtins.js',
  'dist/src/core/errors.js',
  'dist/src/native/addon.js',
  'dist/src/core/sockaddr.js',
  'dist/src/service/drain.js',
  'dist/src/service/stop.js',
  'dist/src/service/idle.js',
  'dist/src/shared/notify-receiver.js',
  'dist/src/core/runtime.js',
  'dist/src/core/quote.js',
]);
const inIndex = new Set(Object.keys(main.metafile.inputs));
const shared = Object.keys(lazy.metafile.inputs).filter((input) => inIndex.has(input) && !shareable.has(input));
if (shared.length > 0) {
  throw new Error(`${LAZY.join(', ')} import modules of the index (${shared.join(', ')}): hand them over through src/service/internals.ts`);
}
// The CLI and the testing library use internals too; those are bundled into them.
await build({ ...common, outdir: 'dist/pkg', entryPoints: { testing: 'dist/src/testing.js', 'cli/main': 'dist/src/cli/main.js' } });
chmodSync('dist/pkg/cli/main.js', 0o755);
