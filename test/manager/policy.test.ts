import { expect } from 'chai';
import { classify, exitCodeOf, shouldRestart, type ExitResult, type RestartPolicy } from '../../src/manager/policy.js';

/*
 * systemd's policy tables, as the manager applies them: Result= of an exit (service_sigchld_event(),
 * service_enter_signal()), whether Restart= starts the service again (service_shall_restart()), and
 * what `sd-activate run` exits with.
 */

describe('policy: Result= and Restart=', () => {
  it('a Type=notify service that ends cleanly before READY=1 is Result=protocol; one that fails keeps its own result', () => {
    expect(classify(0, null, { killedFor: undefined, awaitingReady: true })).to.equal('protocol');
    expect(classify(null, 'SIGTERM', { killedFor: undefined, awaitingReady: true })).to.equal('protocol');
    expect(classify(3, null, { killedFor: undefined, awaitingReady: true })).to.equal('exit-code');
    expect(classify(null, 'SIGSEGV', { killedFor: undefined, awaitingReady: true })).to.equal('core-dump');
    // Stopped by the manager before it was ready: a stop, not a protocol violation.
    expect(classify(null, 'SIGTERM', { killedFor: 'stop', awaitingReady: true })).to.equal('success');
    expect(classify(0, null, { killedFor: undefined, awaitingReady: false })).to.equal('success');
  });

  it('a stop that needed SIGKILL is Result=timeout; the watchdog and the start timeout keep theirs', () => {
    expect(classify(null, 'SIGKILL', { killedFor: 'stop', sigkilled: true })).to.equal('timeout');
    expect(classify(null, 'SIGKILL', { killedFor: 'restart', sigkilled: true })).to.equal('timeout');
    expect(classify(null, 'SIGKILL', { killedFor: 'watchdog', sigkilled: true })).to.equal('watchdog');
    expect(classify(null, 'SIGKILL', { killedFor: 'timeout', sigkilled: true })).to.equal('timeout');
    expect(classify(null, 'SIGKILL', { killedFor: undefined })).to.equal('signal');
  });

  it('Restart=on-abnormal takes every failure but an exit status, Result=protocol included; on-failure takes protocol too', () => {
    const results: ExitResult[] = ['success', 'exit-code', 'signal', 'core-dump', 'watchdog', 'timeout', 'protocol'];
    const table = (policy: RestartPolicy): ExitResult[] => results.filter((r) => shouldRestart(policy, r));
    expect(table('on-abnormal')).to.deep.equal(['signal', 'core-dump', 'watchdog', 'timeout', 'protocol']);
    expect(table('on-failure')).to.deep.equal(['exit-code', 'signal', 'core-dump', 'watchdog', 'timeout', 'protocol']);
    expect(table('on-abort')).to.deep.equal(['signal', 'core-dump']);
  });

  it('exit status: a failure that exited 0 is 1; otherwise the status, or 128 + the signal', () => {
    expect(exitCodeOf({ code: 0, signal: null, result: 'protocol' })).to.equal(1);
    expect(exitCodeOf({ code: null, signal: 'SIGTERM', result: 'protocol' })).to.equal(143);
    expect(exitCodeOf({ code: 0, signal: null, result: 'success' })).to.equal(0);
    expect(exitCodeOf({ code: null, signal: 'SIGABRT', result: 'watchdog' })).to.equal(134);
  });
});
