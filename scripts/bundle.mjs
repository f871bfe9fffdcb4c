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

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Dependencies stay dependencies, resolved from node_modules at run time (and loaded lazily).
  packages: 'external',
  // Code loaded with import() (the upgrade machinery, worker pools) goes to files of its own, read
  // only when first used; what it shares with the entry point goes to a chunk.
  splitting: true,
  // Chunks sit beside the entry points: src/native.ts finds the package root two levels up.
  chunkNames: '[name]-[hash]',
  logLevel: 'warning',
  plugins: [selfReference],
};

rmSync('dist/pkg', { recursive: true, force: true });
await build({
  ...common,
  outdir: 'dist/pkg',
  entryPoints: {
    index: 'dist/src/index.js',
    net: 'dist/adapters/net.js',
    dgram: 'dist/adapters/dgram.js',
    http: 'dist/adapters/http.js',
    express: 'dist/adapters/express.js',
    fastify: 'dist/adapters/fastify.js',
  },
});
// The CLI and the testing library use internals too; those are bundled into them.
await build({ ...common, outdir: 'dist/pkg', entryPoints: { testing: 'dist/src/testing.js', 'cli/main': 'dist/src/cli/main.js' } });
chmodSync('dist/pkg/cli/main.js', 0o755);
