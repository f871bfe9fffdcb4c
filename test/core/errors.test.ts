import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The bundled package, as users load it: class names there are whatever the bundler left. */
const PKG = (file: string): string => fileURLToPath(new URL(`../../pkg/${file}`, import.meta.url));

function run(script: string): { status: number | null; stderr: string } {
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  return { status: child.status, stderr: child.stderr };
}

describe('SystemdError, as the bundled package throws it', () => {
  it('an uncaught one prints as "SystemdError: ...", the name it has', () => {
    const { status, stderr } = run(
      `import { listenFds } from ${JSON.stringify(PKG('index.js'))};
       process.env.LISTEN_PID = String(process.pid);
       process.env.LISTEN_FDS = 'x';
       listenFds();`,
    );
    expect(status).to.equal(1);
    expect(stderr).to.match(/^SystemdError: LISTEN_FDS="x" is not a number$/m);
    expect(stderr).not.to.match(/_SystemdError|\[SystemdError\]/);
  });

  it('an unhandled rejection of sd-activate/testing prints the same way', () => {
    const { status, stderr } = run(
      `import { NotifyReceiver } from ${JSON.stringify(PKG('testing.js'))};
       const receiver = new NotifyReceiver('@sd-activate-errors-' + process.pid);
       receiver.close();
       await receiver.receive();`,
    );
    expect(status).to.equal(1);
    expect(stderr).to.match(/^SystemdError: the notify receiver was closed$/m);
    expect(stderr).not.to.match(/_SystemdError|\[SystemdError\]/);
  });

  it('every class the bundles export has its own name, whatever the bundler renamed', async () => {
    for (const file of ['index.js', 'testing.js']) {
      const exports = (await import(PKG(file))) as Record<string, unknown>;
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value))) {
          expect((value as { name: string }).name, `${file}: ${name}`).to.equal(name);
        }
      }
    }
  });
});
