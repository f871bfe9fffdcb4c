/**
 * The package as a user gets it: `npm pack` of this tree, installed into fresh directories with
 * npm, on a PATH that holds node, npm, npx and sh and nothing else (no gcc, cc, make or python).
 * Packing and each install happen once per mocha process and are shared by the package tests.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository (dist/test/package/support.js is three levels down). */
export const root = fileURLToPath(new URL('../../..', import.meta.url));

/** The prebuilt binaries the package must carry, relative to its root. */
export const PREBUILDS = [
  'prebuilds/linux-x64/sd-activate.glibc.node',
  'prebuilds/linux-x64/sd-activate.musl.node',
  'prebuilds/linux-arm64/sd-activate.glibc.node',
] as const;

/** Tools whose absence the no-compiler PATH guarantees. */
export const BUILD_TOOLS = ['gcc', 'cc', 'c++', 'g++', 'clang', 'make', 'python', 'python3'] as const;

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temp dir, removed when the process exits. */
export function tempDir(label = ''): string {
  const dir = mkdtempSync(join(tmpdir(), `sd-activate-${label}`));
  made.push(dir);
  return dir;
}

/** Runs a command and returns its result; throws with its output when `check` and it fails. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; check?: boolean; input?: string },
): SpawnSyncReturns<string> & { ms: number } {
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    encoding: 'utf8',
    input: options.input,
    maxBuffer: 64 * 1024 * 1024,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.error) throw result.error;
  if (options.check !== false && result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal} in ${options.cwd}\n${result.stdout}\n${result.stderr}`);
  }
  return Object.assign(result, { ms });
}

/** The directory holding only `node` (this process's), `npm`, `npx` and `sh`. */
let binDir: string | undefined;
export function noCompilerBin(): string {
  if (binDir) return binDir;
  const dir = tempDir('bin-');
  symlinkSync(process.execPath, join(dir, 'node'));
  symlinkSync('/bin/sh', join(dir, 'sh'));
  // npm's own scripts, run by whichever `node` comes first on PATH: the one above.
  writeFileSync(join(dir, 'npm'), `#!/bin/sh\nexec node '${npmCli()}' "$@"\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'npx'), `#!/bin/sh\nexec node '${join(dirname(npmCli()), 'npx-cli.js')}' "$@"\n`, { mode: 0o755 });
  binDir = dir;
  return dir;
}

/** npm-cli.js of the npm on this machine. */
function npmCli(): string {
  const fromEnv = process.env.npm_execpath;
  if (fromEnv && existsSync(fromEnv) && fromEnv.endsWith('npm-cli.js')) return fromEnv;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const npm = join(dir, 'npm');
    if (dir && existsSync(npm)) return realpathSync(npm);
  }
  throw new Error('npm is not on PATH');
}

/**
 * The environment of a user's shell: this one without npm's script variables (npm_config_*,
 * npm_package_*, ...), without compiler settings and without PREBUILDS_ONLY, with the no-compiler
 * PATH, and with npm's user config minus `nodedir` (a setting of this machine kind, not a user's).
 */
let userConfig: string | undefined;
export function userEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(npm_|INIT_CWD$|NODE$|NODE_OPTIONS$|PREBUILDS_ONLY$|SD_ACTIVATE_PREBUILD$|CC$|CXX$|LINK$|LIBC$)/i.test(key)) continue;
    if (/^(LISTEN_|NOTIFY_SOCKET$|WATCHDOG_)/.test(key)) continue;
    env[key] = value;
  }
  if (!userConfig) {
    userConfig = join(tempDir('npmrc-'), 'npmrc');
    const own = join(homedir(), '.npmrc');
    const lines = existsSync(own) ? readFileSync(own, 'utf8').split('\n') : [];
    writeFileSync(userConfig, lines.filter((line) => !/^\s*nodedir\s*=/.test(line)).join('\n'));
  }
  env.npm_config_userconfig = userConfig;
  env.PATH = noCompilerBin();
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * userEnv() as the `env` of spawnActivated() (which starts from this process's environment):
 * every variable of ours removed, the user's set, LISTEN_FDS/LISTEN_FDNAMES left to it.
 */
export function activatedEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const key of Object.keys(process.env)) env[key] = undefined;
  Object.assign(env, userEnv(extra));
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  return env;
}

export interface PackedFile {
  path: string;
  size: number;
}

export interface Packed {
  tarball: string;
  files: PackedFile[];
  size: number;
  unpackedSize: number;
}

let packed: Packed | undefined;

/**
 * `npm pack` of this tree. The prebuilt binaries are built first when any is missing (the prepack
 * script builds them all for a publish); dist/ is what `npm test` built. Scripts are not run, so a
 * concurrent test run never sees dist/ rebuilt under it.
 */
export function pack(): Packed {
  if (packed) return packed;
  if (!PREBUILDS.every((file) => existsSync(join(root, file)))) {
    run(process.execPath, [join(root, 'scripts', 'build-prebuilds.mjs')], { cwd: root });
  }
  const out = tempDir('pack-');
  const result = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: root });
  const [info] = JSON.parse(result.stdout) as Array<{ filename: string; files: PackedFile[]; size: number; unpackedSize: number }>;
  if (!info) throw new Error(`npm pack printed no result: ${result.stdout}`);
  packed = { tarball: join(out, info.filename), files: info.files, size: info.size, unpackedSize: info.unpackedSize };
  return packed;
}

let bare: string | undefined;

/** The packed tarball without prebuilds/: what installing looks like where no prebuilt binary fits. */
export function bareTarball(): string {
  if (bare) return bare;
  const dir = tempDir('bare-');
  run('tar', ['-xzf', pack().tarball, '-C', dir], { cwd: dir });
  rmSync(join(dir, 'package', 'prebuilds'), { recursive: true });
  const tarball = join(dir, 'sd-activate-bare.tgz');
  run('tar', ['-czf', tarball, '-C', dir, 'package'], { cwd: dir });
  bare = tarball;
  return tarball;
}

export interface Installed {
  /** The consumer project: package.json of its own, node_modules/sd-activate inside. */
  dir: string;
  /** node_modules/sd-activate */
  pkg: string;
  /** npm's output. */
  log: string;
  ms: number;
}

const installs = new Map<string, Installed>();

/**
 * A fresh consumer project with `tarball` installed by npm on the no-compiler PATH, made once per
 * tarball, flag and `purpose` (a test that changes its project names a purpose of its own).
 */
export function install(options: {
  ignoreScripts: boolean;
  tarball?: string;
  check?: boolean;
  purpose?: string;
  /** More packages for the same `npm install` (`express@5.1.0`). */
  also?: readonly string[];
}): Installed & { status: number | null } {
  const tarball = options.tarball ?? pack().tarball;
  const key = `${tarball}\0${options.ignoreScripts}\0${options.purpose ?? ''}\0${(options.also ?? []).join(' ')}`;
  const cached = installs.get(key);
  if (cached) return { ...cached, status: 0 };
  const dir = tempDir('consumer-');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const args = ['install', tarball, ...(options.also ?? []), '--no-audit', '--no-fund', '--foreground-scripts', '--loglevel=info'];
  if (options.ignoreScripts) args.push('--ignore-scripts');
  const result = run('npm', args, { cwd: dir, env: userEnv(), check: options.check ?? true });
  const installed = { dir, pkg: join(dir, 'node_modules', 'sd-activate'), log: result.stdout + result.stderr, ms: result.ms };
  if (result.status === 0) installs.set(key, installed);
  return { ...installed, status: result.status };
}

/** Runs `node` (this process's) with the user environment in `cwd`. */
export function node(cwd: string, args: readonly string[], extra: Record<string, string | undefined> = {}): SpawnSyncReturns<string> & { ms: number } {
  return run(process.execPath, args, { cwd, env: userEnv(extra), check: false });
}

/** Writes `source` to `file` in `dir` (creating folders) and returns its path. */
export function writeScript(dir: string, file: string, source: string): string {
  const path = join(dir, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, source);
  return path;
}

/** The installed package's package.json. */
export function manifest(pkgDir: string): {
  name: string;
  version: string;
  exports: Record<string, string | Record<string, string>>;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  sideEffects?: unknown;
  files?: string[];
  scripts?: Record<string, string>;
  os?: string[];
  engines?: Record<string, string>;
} {
  return JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
}

/** The subpaths of the exports map that are modules (`.`, `./net`, ...), not package.json. */
export function moduleSubpaths(pkgDir: string): string[] {
  return Object.keys(manifest(pkgDir).exports).filter((key) => !key.endsWith('.json'));
}

/** `sd-activate` for `.`, `sd-activate/net` for `./net`. */
export function specifier(subpath: string): string {
  return subpath === '.' ? 'sd-activate' : `sd-activate/${subpath.slice(2)}`;
}

/** What a consumer sees: listenFds() as JSON, or the error it throws, and the addons in the process. */
export const PROBE = `
const { listenFds } = await import('sd-activate');
let fds = null;
let error = null;
try {
  fds = JSON.parse(JSON.stringify(listenFds()));
} catch (e) {
  error = { name: e.name, code: e.code, message: e.message, cause: e.cause?.message ?? null };
}
const addons = process.report.getReport().sharedObjects.filter((file) => file.endsWith('.node'));
console.log(JSON.stringify({ node: process.version, arch: process.arch, fds, error, addons }));
`;

export interface ProbeResult {
  node: string;
  arch: string;
  fds: Array<{ fd: number; name: string; description: string; info: Record<string, unknown> & { local?: Record<string, unknown> } }> | null;
  error: { name: string; code: string; message: string; cause: string | null } | null;
  addons: string[];
}

export function parseProbe(stdout: string, stderr: string): ProbeResult {
  try {
    return JSON.parse(stdout.trim().split('\n').pop() ?? '') as ProbeResult;
  } catch {
    throw new Error(`the probe printed no result; stdout: ${stdout}; stderr: ${stderr}`);
  }
}
