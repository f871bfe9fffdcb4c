import { expect } from 'chai';
import { describeSpec, isValidSpecName, parseListenSpec, parseMode, type ListenSpec } from '../../src/manager/listen-spec.js';
import { formatDuration, parseTimespan } from '../../src/core/timespan.js';
import { SystemdError } from '../../src/core/errors.js';
import { quote } from '../../src/core/quote.js';

function fails(text: string, pattern: RegExp): void {
  let error: unknown;
  try {
    parseListenSpec(text);
  } catch (e) {
    error = e;
  }
  expect(error, `"${text}" should be refused`).to.be.instanceOf(SystemdError);
  expect((error as SystemdError).code).to.equal('ERR_SD_LISTEN_SPEC_INVALID');
  expect((error as Error).message).to.match(pattern);
  // Whole, or its first characters and its length for a long one.
  expect((error as Error).message).to.include(quote(text));
  expect((error as Error).message, 'one line').not.to.include('\n');
}

/** The spec without `text`, which is only the input echoed. */
function parse(text: string, defaults = {}): Record<string, unknown> & { name: string; address?: unknown } {
  const spec: ListenSpec = parseListenSpec(text, defaults);
  expect(spec.text).to.equal(text);
  const { text: _text, ...rest } = spec;
  return rest;
}

describe('cli/listen-spec', () => {
  describe('TCP and UDP', () => {
    it('a bare port is [::]:PORT stream, like ListenStream=8080, falling back to IPv4 where there is no IPv6', () => {
      expect(parse('8080')).to.deep.equal({ kind: 'socket', name: 'unknown', type: 'stream', address: { family: 'ipv6', address: '::', port: 8080 }, anyAddress: true });
      expect(parse('tcp:8080')).to.deep.equal(parse('8080'));
    });

    it('IPv4 host:port, with and without tcp:', () => {
      const want = { kind: 'socket', name: 'web', type: 'stream', address: { family: 'ipv4', address: '127.0.0.1', port: 8080 } };
      expect(parse('web=tcp:127.0.0.1:8080')).to.deep.equal(want);
      expect(parse('web=127.0.0.1:8080')).to.deep.equal(want);
    });

    it('IPv6 in brackets, with a numeric scope', () => {
      expect(parse('tcp:[::]:8080').address).to.deep.equal({ family: 'ipv6', address: '::', port: 8080 });
      expect(parse('[::1]:80').address).to.deep.equal({ family: 'ipv6', address: '::1', port: 80 });
      expect(parse('tcp:[fe80::1%2]:80').address).to.deep.equal({ family: 'ipv6', address: 'fe80::1', port: 80, scopeId: 2 });
      expect(parse('tcp:[::ffff:10.0.0.1]:80').address).to.deep.equal({ family: 'ipv6', address: '::ffff:10.0.0.1', port: 80 });
    });

    it('udp: is a datagram socket; a bare udp port is [::]', () => {
      expect(parse('dns=udp:[::1]:5353')).to.deep.equal({ kind: 'socket', name: 'dns', type: 'dgram', address: { family: 'ipv6', address: '::1', port: 5353 } });
      expect(parse('udp:5353')).to.deep.include({ type: 'dgram', anyAddress: true });
    });

    it('port 0 (kernel chooses) and 65535 are accepted', () => {
      expect(parse('tcp:127.0.0.1:0').address).to.deep.include({ port: 0 });
      expect(parse('65535').address).to.deep.include({ port: 65535 });
    });

    it('options after commas: backlog, ipv6-only, reuse-port', () => {
      expect(parse('w=tcp:[::]:80,backlog=16,ipv6-only,reuse-port')).to.deep.include({ backlog: 16, v6Only: true, reusePort: true });
      expect(parse('w=tcp:[::]:80,ipv6-only=no,reuse-port=no')).to.deep.include({ v6Only: false, reusePort: false });
      expect(parse('udp:[::]:53,ipv6-only=yes')).to.deep.include({ v6Only: true });
    });

    it('defaults apply where the spec sets nothing, and the spec wins over them', () => {
      const defaults = { backlog: 5, v6Only: true, reusePort: true, mode: 0o600 };
      expect(parse('tcp:[::]:80', defaults)).to.deep.include({ backlog: 5, v6Only: true, reusePort: true });
      expect(parse('tcp:[::]:80,backlog=9,ipv6-only=no', defaults)).to.deep.include({ backlog: 9, v6Only: false });
      // v6Only means nothing for IPv4, backlog nothing for UDP, mode nothing for TCP: left out
      expect(parse('tcp:127.0.0.1:80', defaults)).not.to.have.any.keys('v6Only', 'mode');
      expect(parse('udp:127.0.0.1:53', defaults)).not.to.have.any.keys('backlog', 'mode');
    });
  });

  describe('unix sockets, FIFOs, message queues, special files', () => {
    it('unix stream: unix:PATH, a bare /path, a relative path behind unix:', () => {
      const want = { kind: 'socket', name: 'admin', type: 'stream', address: { family: 'unix', path: '/run/app.sock' } };
      expect(parse('admin=unix:/run/app.sock')).to.deep.equal(want);
      expect(parse('admin=/run/app.sock')).to.deep.equal(want);
      expect(parse('unix:./app.sock').address).to.deep.equal({ family: 'unix', path: './app.sock' });
    });

    it('abstract names: @name, unix:@name, and the datagram and seqpacket kinds', () => {
      expect(parse('@app').address).to.deep.equal({ family: 'unix', abstract: 'app' });
      expect(parse('unix:@app')).to.deep.equal(parse('@app'));
      expect(parse('unix-dgram:@log')).to.deep.include({ type: 'dgram', address: { family: 'unix', abstract: 'log' } });
      expect(parse('seqpacket:@ctl')).to.deep.include({ type: 'seqpacket', address: { family: 'unix', abstract: 'ctl' } });
    });

    it('unix-dgram: and seqpacket: (and unix-seqpacket:) paths', () => {
      expect(parse('log=unix-dgram:/run/log.sock')).to.deep.equal({ kind: 'socket', name: 'log', type: 'dgram', address: { family: 'unix', path: '/run/log.sock' } });
      expect(parse('seqpacket:/run/s.sock')).to.deep.include({ type: 'seqpacket' });
      expect(parse('unix-seqpacket:/run/s.sock')).to.deep.equal(parse('seqpacket:/run/s.sock'));
    });

    it('mode= on socket files, and a path that contains commas keeps them', () => {
      expect(parse('unix:/run/a.sock,mode=0600')).to.deep.include({ mode: 0o600, address: { family: 'unix', path: '/run/a.sock' } });
      expect(parse('unix:/run/a,b.sock').address).to.deep.equal({ family: 'unix', path: '/run/a,b.sock' });
      expect(parse('unix:/run/a,b.sock,backlog=3')).to.deep.include({ backlog: 3, address: { family: 'unix', path: '/run/a,b.sock' } });
    });

    it('fifo:, mqueue:, special:', () => {
      expect(parse('in=fifo:/run/app.fifo,mode=0620')).to.deep.equal({ kind: 'fifo', name: 'in', path: '/run/app.fifo', mode: 0o620 });
      expect(parse('q=mqueue:/app,maxmsg=4,msgsize=64')).to.deep.equal({ kind: 'mqueue', name: 'q', path: '/app', maxmsg: 4, msgsize: 64 });
      expect(parse('dev=special:/dev/null')).to.deep.equal({ kind: 'special', name: 'dev', path: '/dev/null' });
    });
  });

  describe('names', () => {
    it('NAME= sets the fd name; without it the name is "unknown", as LISTEN_FDNAMES-less activation reports', () => {
      expect(parse('web=8080').name).to.equal('web');
      expect(parse('8080').name).to.equal('unknown');
      expect(parse('my web=8080').name).to.equal('my web');
    });

    it('an = inside a path is not a name', () => {
      expect(parse('unix:/run/a=b.sock')).to.deep.include({ name: 'unknown', address: { family: 'unix', path: '/run/a=b.sock' } });
    });

    it('isValidSpecName follows fdname_is_valid(), and refuses the separators of --listen', () => {
      expect(isValidSpecName('web')).to.equal(true);
      expect(isValidSpecName('x'.repeat(255))).to.equal(true);
      expect(isValidSpecName('x'.repeat(256))).to.equal(false);
      for (const bad of ['', 'a:b', 'a,b', 'a=b', 'tab\there', 'é']) expect(isValidSpecName(bad), JSON.stringify(bad)).to.equal(false);
    });
  });

  describe('bad input: one line saying what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['web=', /nothing to listen on/],
      ['tcp:127.0.0.1:99999', /port "99999" is not a number from 0 to 65535/],
      ['tcp:127.0.0.1:http', /port "http"/],
      ['tcp:127.0.0.1:-1', /port "-1"/],
      ['tcp:', /needs PORT, HOST:PORT/],
      ['localhost:8080', /"localhost" is not an IP address \(host names are not resolved/],
      ['tcp:example.com:80', /host names are not resolved/],
      ['tcp:256.0.0.1:80', /"256.0.0.1" is not an IP address/],
      ['tcp:::1:80', /write an IPv6 address in brackets: \[::1\]:80/],
      ['tcp:[::1]80', /\[ADDRESS\]:PORT/],
      ['tcp:[::g]:80', /"::g" is not an IPv6 address/],
      ['tcp:[fe80::1%eth0]:80', /interface index/],
      ['sctp:1.2.3.4:5', /unknown kind "sctp"/],
      ['tcp:1.2.3.4:5,bogus=1', /unknown option "bogus"/],
      ['tcp:1.2.3.4:5,backlog=x', /backlog= takes a whole number/],
      ['tcp:1.2.3.4:5,ipv6-only', /ipv6-only applies to IPv6 addresses only/],
      ['tcp:[::]:5,ipv6-only=maybe', /takes yes or no/],
      ['tcp:1.2.3.4:5,mode=0600', /mode does not apply to tcp sockets/],
      ['udp:1.2.3.4:5,backlog=1', /backlog does not apply to udp sockets/],
      ['tcp:1.2.3.4:5,backlog=1,backlog=2', /backlog is given twice/],
      ['unix:', /needs a path/],
      ['unix:@', /needs a name after @/],
      [`unix:/${'x'.repeat(107)}`, /at most 107/],
      ['unix:/a.sock,mode=999', /octal mode/],
      ['unix-dgram:/a.sock,backlog=1', /backlog does not apply to unix dgram sockets/],
      ['@abs,mode=0600', /mode does not apply to abstract sockets/],
      ['fifo:', /needs a path/],
      ['fifo:/a,backlog=1', /backlog does not apply to FIFOs/],
      ['mqueue:app', /one slash and a name/],
      ['mqueue:/a/b', /one slash and a name/],
      ['mqueue:/app,maxmsg=4', /maxmsg and msgsize together/],
      ['mqueue:/app,maxmsg=0,msgsize=1', /from 1/],
      ['special:/dev/null,mode=0600', /mode does not apply to special files/],
      ['a:b=8080', /unknown kind "a"/],
      [`${'x'.repeat(256)}=8080`, /fd name .* is not valid/],
    ];
    for (const [text, pattern] of cases) {
      it(JSON.stringify(text.length > 40 ? `${text.slice(0, 37)}...` : text), () => fails(text, pattern));
    }
  });

  it('describeSpec says it as a .socket unit would', () => {
    expect(describeSpec(parseListenSpec('8080'))).to.equal('tcp [::]:8080');
    expect(describeSpec(parseListenSpec('udp:127.0.0.1:53'))).to.equal('udp 127.0.0.1:53');
    expect(describeSpec(parseListenSpec('[fe80::1%3]:80'))).to.equal('tcp [fe80::1%3]:80');
    expect(describeSpec(parseListenSpec('/run/a.sock'))).to.equal('unix /run/a.sock');
    expect(describeSpec(parseListenSpec('unix-dgram:@log'))).to.equal('unix-dgram @log');
    expect(describeSpec(parseListenSpec('fifo:/run/f'))).to.equal('fifo /run/f');
  });

  it('parseMode takes octal in the forms people write', () => {
    expect(parseMode('0600')).to.equal(0o600);
    expect(parseMode('600')).to.equal(0o600);
    expect(parseMode('0o755')).to.equal(0o755);
    expect(parseMode('0888')).to.equal(undefined);
    expect(parseMode('')).to.equal(undefined);
  });
});

describe('cli/timespan', () => {
  it('reads systemd time spans: a bare number is seconds', () => {
    expect(parseTimespan('90')).to.equal(90_000);
    expect(parseTimespan('2.5s')).to.equal(2500);
    expect(parseTimespan('500ms')).to.equal(500);
    expect(parseTimespan('1min 30s')).to.equal(90_000);
    expect(parseTimespan('1h')).to.equal(3_600_000);
    expect(parseTimespan('250us')).to.equal(0.25);
    expect(parseTimespan('infinity')).to.equal(Infinity);
  });

  it('refuses what is not one', () => {
    for (const bad of ['', 'soon', '5 fortnights', '-1', '1s x', 's']) expect(parseTimespan(bad), bad).to.equal(undefined);
  });

  it('formatDuration picks a unit a person reads at a glance', () => {
    expect(formatDuration(12.34)).to.equal('12.3ms');
    expect(formatDuration(1500)).to.equal('1.5s');
    expect(formatDuration(90_000)).to.equal('1.5min');
    expect(formatDuration(Infinity)).to.equal('infinity');
  });
});
