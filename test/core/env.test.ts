import { expect } from 'chai';
import { LISTEN_FDS_START, LISTEN_VARIABLES, parseListenEnvironment, type ListenEnvironment, type ProcessIdentity } from '../../src/core/env.js';
import { SystemdError, type SystemdErrorCode } from '../../src/core/errors.js';

const PID = 4242;
const EINVAL = 22;
const ERANGE = 34;
const INT_MAX = 2 ** 31 - 1;

/** This process, on a kernel without unique pidfd ids (so LISTEN_PIDFDID is parsed but not compared). */
const self: ProcessIdentity = { pid: PID, pidfdId: () => null };

function parse(env: Record<string, string | undefined>, identity: ProcessIdentity = self): ListenEnvironment {
  return parseListenEnvironment(env, identity);
}

/** LISTEN_PID for this process, LISTEN_FDS as given, and the rest. */
function activated(fds: string, rest: Record<string, string> = {}): Record<string, string> {
  return { LISTEN_PID: String(PID), LISTEN_FDS: fds, ...rest };
}

function failure(env: Record<string, string | undefined>, identity: ProcessIdentity = self): SystemdError {
  let result: ListenEnvironment;
  try {
    result = parse(env, identity);
  } catch (error) {
    expect(error).to.be.instanceOf(SystemdError);
    return error as SystemdError;
  }
  expect.fail(`expected an error for ${JSON.stringify(env)}, got ${JSON.stringify(result)}`);
}

function expectFailure(env: Record<string, string | undefined>, code: SystemdErrorCode, errno: number, identity: ProcessIdentity = self): SystemdError {
  const error = failure(env, identity);
  expect(error.code, error.message).to.equal(code);
  expect(error.cause, error.message).to.deep.equal({ errno: -errno });
  expect(error.name).to.equal('SystemdError');
  return error;
}

function count(env: Record<string, string | undefined>): number {
  const result = parse(env);
  if (!result.activated) expect.fail(`expected activation for ${JSON.stringify(env)}: ${result.reason}`);
  return result.count;
}

describe('parseListenEnvironment()', function () {
  describe('not activated, with the reason', function () {
    it('says so when nothing is set', function () {
      expect(parse({})).to.deep.equal({ activated: false, reason: 'LISTEN_PID is not set' });
    });

    it('ignores LISTEN_FDS and LISTEN_FDNAMES without LISTEN_PID', function () {
      expect(parse({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' })).to.deep.equal({ activated: false, reason: 'LISTEN_PID is not set' });
    });

    it('says so when LISTEN_FDS is missing', function () {
      expect(parse({ LISTEN_PID: String(PID) })).to.deep.equal({ activated: false, reason: 'LISTEN_FDS is not set' });
    });

    it('names the other pid and the likely cause when LISTEN_PID is another process', function () {
      const result = parse({ LISTEN_PID: '4243', LISTEN_FDS: '1' });
      expect(result.activated).to.equal(false);
      if (result.activated) return;
      expect(result.reason).to.contain('LISTEN_PID=4243');
      expect(result.reason).to.contain(`pid ${PID}`);
      expect(result.reason).to.contain('npm start');
      expect(result.reason).to.match(/exec/);
    });

    it('does not look at LISTEN_FDS or LISTEN_PIDFDID when LISTEN_PID is another process', function () {
      let asked = 0;
      const result = parse({ LISTEN_PID: '4243', LISTEN_FDS: 'garbage', LISTEN_PIDFDID: 'garbage' }, { pid: PID, pidfdId: () => (asked++, 1n) });
      expect(result.activated).to.equal(false);
      expect(asked).to.equal(0);
    });
  });

  describe('activated', function () {
    it('gives the count and "unknown" for every fd when LISTEN_FDNAMES is absent', function () {
      expect(parse(activated('3'))).to.deep.equal({ activated: true, count: 3, names: ['unknown', 'unknown', 'unknown'] });
    });

    it('gives the names from LISTEN_FDNAMES, in order', function () {
      expect(parse(activated('3', { LISTEN_FDNAMES: 'http:https:stored' }))).to.deep.equal({
        activated: true,
        count: 3,
        names: ['http', 'https', 'stored'],
      });
    });

    it('starts at fd 3', function () {
      expect(LISTEN_FDS_START).to.equal(3);
    });

    it('lists the four variables it reads, for removal', function () {
      expect([...LISTEN_VARIABLES]).to.deep.equal(['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES']);
    });

    it('is pure: it neither changes the environment nor needs a mutable one', function () {
      const env = Object.freeze({ ...activated('2', { LISTEN_FDNAMES: 'a:b', LISTEN_PIDFDID: '7' }) });
      const before = JSON.stringify(env);
      expect(parse(env).activated).to.equal(true);
      expect(JSON.stringify(env)).to.equal(before);
    });

    it('does not allocate a name per fd for a huge LISTEN_FDS (the fds themselves fail later)', function () {
      const start = process.hrtime.bigint();
      const result = parse(activated(String(INT_MAX - 3)));
      expect(Number(process.hrtime.bigint() - start) / 1e6, 'milliseconds').to.be.below(1000);
      if (!result.activated) expect.fail(result.reason);
      expect(result.count).to.equal(INT_MAX - 3);
      expect(Array.isArray(result.names)).to.equal(true);
      expect(result.names.length).to.equal(INT_MAX - 3);
      expect(result.names[0]).to.equal('unknown');
      expect(result.names[INT_MAX - 4]).to.equal('unknown');
      expect(result.names[INT_MAX - 3]).to.equal(undefined);
      expect(1 in result.names).to.equal(true);
      expect(result.names.slice(0, 2)).to.deep.equal(['unknown', 'unknown']);
    });

    it('fills the names of an ordinary count as a plain array', function () {
      const result = parse(activated('0x100'));
      if (!result.activated) expect.fail(result.reason);
      expect(result.names).to.have.lengthOf(256);
      expect(new Set(result.names)).to.deep.equal(new Set(['unknown']));
    });
  });

  describe('LISTEN_PID (parse_pid: safe_atolu, then 1 .. INT_MAX)', function () {
    const ours: Array<[string, string]> = [
      ['decimal', `${PID}`],
      ['leading space', ` ${PID}`],
      ['leading tab, newline, carriage return', `\t\n\r${PID}`],
      ['leading vertical tab (skipped by strtoul)', `\v${PID}`],
      ['a plus sign', `+${PID}`],
      ['0x hex', `0x${PID.toString(16)}`],
      ['0X hex', `0X${PID.toString(16).toUpperCase()}`],
      ['leading-zero octal', `0${PID.toString(8)}`],
      ['0o octal', `0o${PID.toString(8)}`],
      ['0b binary', `0b${PID.toString(2)}`],
      ['0b then a space (strtoul skips it)', `0b ${PID.toString(2)}`],
    ];
    for (const [what, value] of ours) {
      it(`accepts ${what}: ${JSON.stringify(value)}`, function () {
        expect(count({ LISTEN_PID: value, LISTEN_FDS: '1' })).to.equal(1);
      });
    }

    const invalid: Array<[string, number]> = [
      ['', EINVAL],
      [' ', EINVAL],
      ['abc', EINVAL],
      [`${PID} `, EINVAL],
      [`${PID}\n`, EINVAL],
      [`${PID}x`, EINVAL],
      ['- 1', EINVAL],
      ['0x', EINVAL],
      ['0b', EINVAL],
      ['0b2', EINVAL],
      ['08', EINVAL],
      ['1.0', EINVAL],
      [`\v0b${PID.toString(2)}`, EINVAL], // \v is not systemd white space: 0b is not seen as a prefix
      ['0', ERANGE],
      ['-0', ERANGE],
      ['-1', ERANGE],
      [`-${PID}`, ERANGE],
      ['2147483648', ERANGE],
      ['4294967296', ERANGE],
      ['18446744073709551615', ERANGE],
      ['18446744073709551616', ERANGE],
      ['99999999999999999999x', ERANGE], // strtoul's overflow is reported before the trailing x
      ['0b -1', ERANGE], // UINT64_MAX: systemd sees no '-' first, but it is no pid either
    ];
    for (const [value, errno] of invalid) {
      it(`refuses ${JSON.stringify(value)} with ${errno === EINVAL ? 'EINVAL' : 'ERANGE'}`, function () {
        const error = expectFailure({ LISTEN_PID: value, LISTEN_FDS: '1' }, 'ERR_SD_LISTEN_PID_INVALID', errno);
        expect(error.message).to.contain(`LISTEN_PID=${JSON.stringify(value)}`);
      });
    }

    it('explains the valid range when the number is no pid', function () {
      expect(failure({ LISTEN_PID: '0', LISTEN_FDS: '1' }).message).to.equal('LISTEN_PID="0" is not a pid (1 to 2147483647)');
      expect(failure({ LISTEN_PID: 'abc', LISTEN_FDS: '1' }).message).to.equal('LISTEN_PID="abc" is not a number');
      expect(failure({ LISTEN_PID: '99999999999999999999', LISTEN_FDS: '1' }).message).to.equal('LISTEN_PID="99999999999999999999" is out of range');
    });

    it('refuses an invalid LISTEN_PID even when LISTEN_FDS is missing', function () {
      expectFailure({ LISTEN_PID: 'abc' }, 'ERR_SD_LISTEN_PID_INVALID', EINVAL);
    });
  });

  describe('LISTEN_FDS (safe_atoi, then 1 .. INT_MAX - 3)', function () {
    const valid: Array<[string, number]> = [
      ['1', 1],
      [' 3', 3],
      ['\t\n\r3', 3],
      ['\v3', 3],
      ['\f3', 3],
      ['+3', 3],
      ['010', 8],
      ['0x10', 16],
      ['0X1f', 31],
      ['0b11', 3],
      ['0B11', 3],
      ['0o7', 7],
      ['0O17', 15],
      ['0b+11', 3],
      [' 0b11', 3],
      ['0b 11', 3],
      [String(INT_MAX - 3), INT_MAX - 3],
    ];
    for (const [value, n] of valid) {
      it(`reads ${JSON.stringify(value)} as ${n}`, function () {
        expect(count(activated(value))).to.equal(n);
      });
    }

    const invalid: Array<[string, number, string]> = [
      ['', EINVAL, 'is not a number'],
      [' ', EINVAL, 'is not a number'],
      ['3 ', EINVAL, 'is not a number'],
      ['3\n', EINVAL, 'is not a number'],
      ['3abc', EINVAL, 'is not a number'],
      ['abc', EINVAL, 'is not a number'],
      ['- 3', EINVAL, 'is not a number'],
      ['08', EINVAL, 'is not a number'],
      ['0x', EINVAL, 'is not a number'],
      ['0xg', EINVAL, 'is not a number'],
      ['0b', EINVAL, 'is not a number'],
      ['0b2', EINVAL, 'is not a number'],
      ['0o', EINVAL, 'is not a number'],
      ['0o8', EINVAL, 'is not a number'],
      ['0b0x3', EINVAL, 'is not a number'],
      ['-0b11', EINVAL, 'is not a number'],
      ['\v0b11', EINVAL, 'is not a number'],
      ['9999999999x', EINVAL, 'is not a number'],
      ['0', EINVAL, 'is not a positive fd count'],
      ['-0', EINVAL, 'is not a positive fd count'],
      ['-1', EINVAL, 'is not a positive fd count'],
      ['0b-11', EINVAL, 'is not a positive fd count'],
      ['-2147483648', EINVAL, 'is not a positive fd count'],
      [String(INT_MAX - 2), EINVAL, 'is larger than 2147483644, the most fds sd_listen_fds(3) accepts'],
      [String(INT_MAX), EINVAL, 'is larger than 2147483644, the most fds sd_listen_fds(3) accepts'],
      ['2147483648', ERANGE, 'is out of range'],
      ['-2147483649', ERANGE, 'is out of range'],
      ['9223372036854775808', ERANGE, 'is out of range'],
      ['99999999999999999999', ERANGE, 'is out of range'],
      ['99999999999999999999x', ERANGE, 'is out of range'],
      ['9223372036854775808 ', ERANGE, 'is out of range'],
      ['0x10000000000000000g', ERANGE, 'is out of range'],
    ];
    for (const [value, errno, problem] of invalid) {
      it(`refuses ${JSON.stringify(value)}: ${problem}`, function () {
        const error = expectFailure(activated(value), 'ERR_SD_LISTEN_FDS_INVALID', errno);
        expect(error.message).to.equal(`LISTEN_FDS=${JSON.stringify(value)} ${problem}`);
      });
    }

    it('sees LONG_MIN as a long (then trailing text is EINVAL) and one less as an overflow (ERANGE first)', function () {
      expectFailure(activated('-9223372036854775808x'), 'ERR_SD_LISTEN_FDS_INVALID', EINVAL);
      expectFailure(activated('-9223372036854775809x'), 'ERR_SD_LISTEN_FDS_INVALID', ERANGE);
    });

    it('stays fast on a very long run of digits', function () {
      const start = process.hrtime.bigint();
      expectFailure(activated('9'.repeat(128 * 1024) + 'x'), 'ERR_SD_LISTEN_FDS_INVALID', ERANGE);
      expect(Number(process.hrtime.bigint() - start) / 1e6, 'milliseconds').to.be.below(1000);
    });
  });

  describe('LISTEN_FDNAMES (strv_split_full with EXTRACT_DONT_COALESCE_SEPARATORS)', function () {
    const splits: Array<[string, string[]]> = [
      ['a', ['a']],
      ['', ['']],
      [':', ['', '']],
      ['a::b', ['a', '', 'b']],
      ['a:', ['a', '']],
      [':a', ['', 'a']],
      ['a\\:b', ['a:b']],
      ['a\\\\:b', ['a\\', 'b']],
      ['\\a\\b', ['ab']],
      ['\\\\', ['\\']],
      [' a : b ', [' a ', ' b ']],
      ['"a:b"', ['"a', 'b"']],
      ['é:ü', ['é', 'ü']],
    ];
    for (const [value, names] of splits) {
      it(`splits ${JSON.stringify(value)} into ${JSON.stringify(names)}`, function () {
        expect(parse(activated(String(names.length), { LISTEN_FDNAMES: value }))).to.deep.equal({
          activated: true,
          count: names.length,
          names,
        });
      });
    }

    for (const value of ['a\\', '\\', 'a:b\\', 'a\\\\\\']) {
      it(`refuses ${JSON.stringify(value)}: a lone trailing backslash`, function () {
        const error = expectFailure(activated('1', { LISTEN_FDNAMES: value }), 'ERR_SD_LISTEN_FDNAMES_INVALID', EINVAL);
        expect(error.message).to.equal(`LISTEN_FDNAMES=${JSON.stringify(value)} cannot be split into names: it ends in a lone backslash`);
      });
    }

    it('refuses a trailing backslash before anything else is looked at', function () {
      for (const env of [{}, { LISTEN_PID: '4243', LISTEN_FDS: '1' }, { LISTEN_PID: 'abc' }, activated('abc')]) {
        expectFailure({ ...env, LISTEN_FDNAMES: 'a\\' }, 'ERR_SD_LISTEN_FDNAMES_INVALID', EINVAL);
      }
    });

    it('refuses a count that differs from LISTEN_FDS, saying both', function () {
      const error = expectFailure(activated('3', { LISTEN_FDNAMES: 'a:b' }), 'ERR_SD_LISTEN_FDNAMES_INVALID', EINVAL);
      expect(error.message).to.equal('LISTEN_FDNAMES has 2 names ("a:b") but LISTEN_FDS=3 says 3 fds');
      expect(failure(activated('2', { LISTEN_FDNAMES: '' })).message).to.equal('LISTEN_FDNAMES has 1 name ("") but LISTEN_FDS=2 says 2 fds');
      expect(failure(activated('1', { LISTEN_FDNAMES: 'a:b' })).message).to.equal('LISTEN_FDNAMES has 2 names ("a:b") but LISTEN_FDS=1 says 1 fd');
    });

    it('checks the count only once LISTEN_PID and LISTEN_FDS are good', function () {
      expect(parse({ LISTEN_PID: '4243', LISTEN_FDS: '1', LISTEN_FDNAMES: 'a:b' }).activated).to.equal(false);
      expect(parse({ LISTEN_PID: String(PID), LISTEN_FDNAMES: 'a:b' })).to.deep.equal({ activated: false, reason: 'LISTEN_FDS is not set' });
      expectFailure(activated('0', { LISTEN_FDNAMES: 'a:b' }), 'ERR_SD_LISTEN_FDS_INVALID', EINVAL);
    });
  });

  describe('LISTEN_PIDFDID (newer systemd: safe_atou64, compared where pidfd ids are unique)', function () {
    it('is activated when the id is ours', function () {
      expect(count(activated('1', { LISTEN_PIDFDID: '77' }))).to.equal(1);
      expect(parse(activated('1', { LISTEN_PIDFDID: '77' }), { pid: PID, pidfdId: () => 77n }).activated).to.equal(true);
      expect(parse(activated('1', { LISTEN_PIDFDID: '0x4d' }), { pid: PID, pidfdId: () => 77n }).activated).to.equal(true);
      expect(parse(activated('1', { LISTEN_PIDFDID: '18446744073709551615' }), { pid: PID, pidfdId: () => 2n ** 64n - 1n }).activated).to.equal(true);
    });

    it('is not activated when the id is another process\'s, with the reason', function () {
      expect(parse(activated('1', { LISTEN_PIDFDID: '77' }), { pid: PID, pidfdId: () => 78n })).to.deep.equal({
        activated: false,
        reason: 'LISTEN_PIDFDID=77 names another process than this one',
      });
    });

    it('compares nothing where the kernel has no unique pidfd ids', function () {
      expect(parse(activated('1', { LISTEN_PIDFDID: '77' }), { pid: PID, pidfdId: () => null }).activated).to.equal(true);
    });

    it('asks for our own id only when LISTEN_PIDFDID is set and valid, and at most once', function () {
      let asked = 0;
      const counting: ProcessIdentity = { pid: PID, pidfdId: () => (asked++, 77n) };
      parse(activated('1'), counting);
      expect(asked).to.equal(0);
      failure(activated('1', { LISTEN_PIDFDID: 'x' }), counting);
      expect(asked).to.equal(0);
      parse(activated('1', { LISTEN_PIDFDID: '77' }), counting);
      expect(asked).to.equal(1);
    });

    const invalid: Array<[string, number]> = [
      ['', EINVAL],
      ['abc', EINVAL],
      ['77 ', EINVAL],
      ['0x', EINVAL],
      ['-1', ERANGE],
      ['18446744073709551616', ERANGE],
      ['99999999999999999999x', ERANGE],
    ];
    for (const [value, errno] of invalid) {
      it(`refuses ${JSON.stringify(value)}`, function () {
        const error = expectFailure(activated('1', { LISTEN_PIDFDID: value }), 'ERR_SD_LISTEN_PIDFDID_INVALID', errno);
        expect(error.message).to.equal(`LISTEN_PIDFDID=${JSON.stringify(value)} ${errno === EINVAL ? 'is not a number' : 'is out of range'}`);
      });
    }

    it('accepts what safe_atou64 accepts: 0, -0, and "0b -1" (UINT64_MAX)', function () {
      expect(parse(activated('1', { LISTEN_PIDFDID: '0' }), { pid: PID, pidfdId: () => 0n }).activated).to.equal(true);
      expect(parse(activated('1', { LISTEN_PIDFDID: '-0' }), { pid: PID, pidfdId: () => 0n }).activated).to.equal(true);
      expect(parse(activated('1', { LISTEN_PIDFDID: '0b -1' }), { pid: PID, pidfdId: () => 2n ** 64n - 1n }).activated).to.equal(true);
    });

    it('is read after LISTEN_PID matched and before LISTEN_FDS', function () {
      expect(parse({ LISTEN_PID: '4243', LISTEN_PIDFDID: 'x', LISTEN_FDS: '1' }).activated).to.equal(false);
      expectFailure({ LISTEN_PID: String(PID), LISTEN_PIDFDID: 'x' }, 'ERR_SD_LISTEN_PIDFDID_INVALID', EINVAL);
      expectFailure(activated('abc', { LISTEN_PIDFDID: 'x' }), 'ERR_SD_LISTEN_PIDFDID_INVALID', EINVAL);
      expect(parse(activated('abc', { LISTEN_PIDFDID: '77' }), { pid: PID, pidfdId: () => 78n }).activated).to.equal(false);
    });
  });
});
