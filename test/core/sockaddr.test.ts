import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Address4, Address6 } from 'ip-address';
import { native } from '../../src/native/addon.js';
import { decodeSockaddr, encodeSockaddr, formatIPv6, InetAddress, parseIPv4, parseIPv6, type BindAddress } from '../../src/core/sockaddr.js';
import { uniqueName, useResources } from '../support/resources.js';

const LE = endianness() === 'LE';

function bytesOf(words: readonly number[]): Uint8Array {
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Every group written out, nothing compressed: a text no formatter has touched. */
function fullText(words: readonly number[]): string {
  return words.map((w) => w.toString(16)).join(':');
}

/** Node's own formatting (libuv's inet_ntop, the same algorithm as glibc's). */
function nodeFormat(text: string): string {
  return new net.SocketAddress({ address: text, family: 'ipv6' }).address;
}

/** A small deterministic generator, so a failure names an address that can be tried again. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function family16(buf: Buffer): number {
  return LE ? buf.readUInt16LE(0) : buf.readUInt16BE(0);
}

describe('sockaddr: formatIPv6', () => {
  // What glibc's inet_ntop(3) prints (checked against it), and so systemd and Node.
  const known: Array<[string, number[]]> = [
    ['::', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['::1', [0, 0, 0, 0, 0, 0, 0, 1]],
    ['::2', [0, 0, 0, 0, 0, 0, 0, 2]],
    ['::ffff:1.2.3.4', [0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]],
    ['::ffff:0.0.0.0', [0, 0, 0, 0, 0, 0xffff, 0, 0]],
    ['::1.2.3.4', [0, 0, 0, 0, 0, 0, 0x0102, 0x0304]],
    ['::0.10.0.11', [0, 0, 0, 0, 0, 0, 0xa, 0xb]],
    ['::0.1.0.0', [0, 0, 0, 0, 0, 0, 1, 0]],
    ['::1:0:0', [0, 0, 0, 0, 0, 1, 0, 0]],
    ['::fffe:102:304', [0, 0, 0, 0, 0, 0xfffe, 0x0102, 0x0304]],
    ['1::', [1, 0, 0, 0, 0, 0, 0, 0]],
    ['1:0:0:1::1', [1, 0, 0, 1, 0, 0, 0, 1]],
    ['2001:db8::1', [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]],
    ['fe80::fc:ff:fe00:1', [0xfe80, 0, 0, 0, 0xfc, 0xff, 0xfe00, 1]],
    ['fe80::1', [0xfe80, 0, 0, 0, 0, 0, 0, 1]],
    // Two runs of equal length: the first is compressed.
    ['1::1:0:0:1:1', [1, 0, 0, 1, 0, 0, 1, 1]],
    ['1:0:0:1:1::', [1, 0, 0, 1, 1, 0, 0, 0]],
    ['0:0:1::', [0, 0, 1, 0, 0, 0, 0, 0]],
    // A single zero group is never compressed.
    ['1:0:1:1:1:1:1:1', [1, 0, 1, 1, 1, 1, 1, 1]],
    ['1:2:3:4:5:6:7:0', [1, 2, 3, 4, 5, 6, 7, 0]],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', [0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff]],
    ['abcd:ef01:2345:6789:abcd:ef01:2345:6789', [0xabcd, 0xef01, 0x2345, 0x6789, 0xabcd, 0xef01, 0x2345, 0x6789]],
  ];
  for (const [text, words] of known) {
    it(`${fullText(words)} -> ${text}`, () => {
      expect(formatIPv6(bytesOf(words))).to.equal(text);
      expect(nodeFormat(fullText(words)), "Node's own formatting").to.equal(text);
    });
  }

  it('agrees with Node on 20000 random addresses rich in zero runs, and parses back', () => {
    const random = xorshift(0x5d_ac71);
    for (let n = 0; n < 20000; n++) {
      const words = Array.from({ length: 8 }, (_, i) => {
        const p = random();
        if (p < 0.55) return 0;
        if (p < 0.65 && i === 5) return 0xffff;
        return Math.floor(random() * 0x10000);
      });
      const bytes = bytesOf(words);
      const text = formatIPv6(bytes);
      expect(text, fullText(words)).to.equal(nodeFormat(fullText(words)));
      expect(parseIPv6(text), text).to.deep.equal(bytes);
      expect(parseIPv6(fullText(words)), fullText(words)).to.deep.equal(bytes);
    }
  });

  it("is RFC 5952 (ip-address's correctForm) but for the dotted IPv4 tail inet_ntop keeps", () => {
    // inet_ntop prints ::a.b.c.d (IPv4-compatible, deprecated) and ::ffff:a.b.c.d (IPv4-mapped)
    // dotted; RFC 5952 section 5 only recommends it for mapped ones, and ip-address never does
    // it. systemd and Node print what inet_ntop prints, so this module does too.
    const random = xorshift(0xc0ffee);
    let dotted = 0;
    for (let n = 0; n < 5000; n++) {
      const words = Array.from({ length: 8 }, (_, i) => (i < 5 && random() < 0.8 ? 0 : random() < 0.4 ? 0 : Math.floor(random() * 0x10000)));
      const text = formatIPv6(bytesOf(words));
      const rfc = new Address6(fullText(words)).correctForm();
      const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
      if (tail) {
        dotted++;
        const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
        expect(rfc, text).to.equal(text.slice(0, tail.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`);
      } else {
        expect(rfc).to.equal(text);
      }
    }
    expect(dotted, 'dotted cases seen').to.be.above(100);
  });
});

describe('sockaddr: parseIPv6 and parseIPv4', () => {
  const good: Array<[string, string]> = [
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['2001:DB8::0001', '2001:db8::1'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ['::1.2.3.4', '::1.2.3.4'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['fe80:0:0:0:fc:ff:fe00:1', 'fe80::fc:ff:fe00:1'],
  ];
  for (const [input, output] of good) {
    it(`parses ${input}`, () => {
      expect(formatIPv6(parseIPv6(input))).to.equal(output);
      // The same 16 bytes ip-address finds in it.
      expect(Buffer.from(parseIPv6(input))).to.deep.equal(Buffer.from(new Address6(input).canonicalForm().replace(/:/g, ''), 'hex'));
    });
  }

  const bad = [
    '',
    ':',
    ':::',
    '1',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8::',
    '1::2::3',
    ':1::',
    '1::2:',
    'g::1',
    '12345::1',
    '1.2.3.4',
    '::1.2.3',
    '::256.1.1.1',
    '::1.2.3.4:5',
    '1:2:3:4:5:6:7:1.2.3.4',
    'fe80::1%eth0',
    ' ::1',
    '::1 ',
    '[::1]',
  ];
  for (const text of bad) {
    it(`rejects ${JSON.stringify(text)} with a TypeError`, () => {
      expect(() => parseIPv6(text)).to.throw(TypeError, /not an IPv(6|4) address/);
    });
  }

  it('rejects what is not a string with a TypeError naming it', () => {
    expect(() => parseIPv6(42 as never)).to.throw(TypeError, 'not an IPv6 address: 42');
    expect(() => parseIPv6(undefined as never)).to.throw(TypeError, 'not an IPv6 address: undefined');
    expect(() => parseIPv4(null as never)).to.throw(TypeError, 'not an IPv4 address: null');
  });

  it('takes IPv4 as inet_pton(3) does: four decimal parts, no leading zeros', () => {
    expect(parseIPv4('0.0.0.0')).to.deep.equal([0, 0, 0, 0]);
    expect(parseIPv4('255.255.255.255')).to.deep.equal([255, 255, 255, 255]);
    expect(parseIPv4('10.0.100.1')).to.deep.equal([10, 0, 100, 1]);
    for (const text of ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.010', '1.2.3.-1', '1.2.3.4 ', '0x1.2.3.4', '1..3.4', '１.2.3.4']) {
      expect(() => parseIPv4(text), text).to.throw(TypeError, /not an IPv4 address/);
      expect(net.isIPv4(text), `Node agrees on ${text}`).to.equal(false);
    }
  });
});

describe('sockaddr: encodeSockaddr and decodeSockaddr', () => {
  it('IPv4: 16 bytes, family in host order, port and address in network order', () => {
    const buf = encodeSockaddr({ family: 'ipv4', address: '192.0.2.7', port: 0x1f90 });
    expect(buf).to.have.length(16);
    expect(family16(buf)).to.equal(2);
    expect([...buf.subarray(2, 8)]).to.deep.equal([0x1f, 0x90, 192, 0, 2, 7]);
    expect([...buf.subarray(8)]).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodeSockaddr(buf)).to.deep.equal(new InetAddress({ family: 'ipv4', address: '192.0.2.7', port: 8080 }));
  });

  it('IPv6: 28 bytes, flowinfo in network order, scope id in host order', () => {
    const buf = encodeSockaddr({ family: 'ipv6', address: 'fe80::1', port: 443, flowinfo: 0x12345, scopeId: 0x01020304 });
    expect(buf).to.have.length(28);
    expect(family16(buf)).to.equal(10);
    expect(buf.readUInt16BE(2)).to.equal(443);
    expect(buf.readUInt32BE(4)).to.equal(0x12345);
    expect(buf.subarray(8, 24)).to.deep.equal(Buffer.from(parseIPv6('fe80::1')));
    expect(LE ? buf.readUInt32LE(24) : buf.readUInt32BE(24)).to.equal(0x01020304);
    const decoded = decodeSockaddr(buf) as InetAddress;
    expect(decoded).to.deep.equal(new InetAddress({ family: 'ipv6', address: 'fe80::1', port: 443, flowinfo: 0x12345, scopeId: 0x01020304 }));
    expect(decoded.toString()).to.equal('[fe80::1%16909060]:443');
  });

  it('IPv4-mapped IPv6: flagged, printed dotted', () => {
    const decoded = decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '::ffff:127.0.0.1', port: 80 })) as InetAddress;
    expect([decoded.address, decoded.v4Mapped, decoded.toString()]).to.deep.equal(['::ffff:127.0.0.1', true, '[::ffff:127.0.0.1]:80']);
    const compat = decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '::127.0.0.1', port: 80 })) as InetAddress;
    expect([compat.address, compat.v4Mapped]).to.deep.equal(['::127.0.0.1', false]);
  });

  const roundTrips: BindAddress[] = [
    { family: 'ipv4', address: '0.0.0.0', port: 0 },
    { family: 'ipv4', address: '255.255.255.255', port: 65535 },
    { family: 'ipv6', address: '::', port: 53 },
    { family: 'ipv6', address: '2001:db8::dead:beef', port: 8443, flowinfo: 7, scopeId: 3 },
    { family: 'unix', path: '/run/app.sock' },
    { family: 'unix', path: 'relative/ü.sock' },
    { family: 'unix', path: `/${'p'.repeat(106)}` },
    { family: 'unix', abstract: 'name' },
    { family: 'unix', abstract: 'with\0nul\0' },
    { family: 'unix', abstract: 'a'.repeat(107) },
  ];
  for (const address of roundTrips) {
    it(`round-trips ${JSON.stringify(address)}`, () => {
      const buf = encodeSockaddr(address);
      const decoded = decodeSockaddr(buf);
      if (address.family === 'unix') {
        if ('path' in address) {
          expect(buf).to.have.length(2 + Buffer.byteLength(address.path) + 1);
          expect(buf[buf.length - 1]).to.equal(0);
          expect(decoded).to.deep.equal({ family: 'unix', kind: 'path', path: address.path });
        } else {
          expect(buf).to.have.length(2 + 1 + Buffer.byteLength(address.abstract));
          expect(buf[2]).to.equal(0);
          expect(decoded).to.deep.equal({ family: 'unix', kind: 'abstract', name: address.abstract });
        }
      } else {
        expect(decoded).to.deep.equal(new InetAddress({ ...address, address: formatIPv6OrV4(address) }));
      }
    });
  }

  function formatIPv6OrV4(address: BindAddress & { address: string }): string {
    return address.family === 'ipv6' ? formatIPv6(parseIPv6(address.address)) : address.address;
  }

  it('decodes unix sockaddrs as the kernel writes them: unnamed, abstract by exact length, path to its NUL', () => {
    const head = Buffer.alloc(2);
    if (LE) head.writeUInt16LE(1, 0);
    else head.writeUInt16BE(1, 0);
    expect(decodeSockaddr(head)).to.deep.equal({ family: 'unix', kind: 'unnamed' });
    expect(decodeSockaddr(Buffer.concat([head, Buffer.from('\0')]))).to.deep.equal({ family: 'unix', kind: 'abstract', name: '' });
    expect(decodeSockaddr(Buffer.concat([head, Buffer.from('\0ab\0\0')]))).to.deep.equal({ family: 'unix', kind: 'abstract', name: 'ab\0\0' });
    // A path of the full 108 bytes has no NUL at all; one with bytes after its NUL ends at the NUL.
    expect(decodeSockaddr(Buffer.concat([head, Buffer.alloc(108, 'x')]))).to.deep.equal({ family: 'unix', kind: 'path', path: 'x'.repeat(108) });
    expect(decodeSockaddr(Buffer.concat([head, Buffer.from('/a\0junk')]))).to.deep.equal({ family: 'unix', kind: 'path', path: '/a' });
  });

  it('decodes netlink and vsock, and keeps the bytes of anything else', () => {
    const nl = Buffer.alloc(12);
    const vm = Buffer.alloc(16);
    const write32 = (buf: Buffer, v: number, at: number) => (LE ? buf.writeUInt32LE(v, at) : buf.writeUInt32BE(v, at));
    const write16 = (buf: Buffer, v: number) => (LE ? buf.writeUInt16LE(v, 0) : buf.writeUInt16BE(v, 0));
    write16(nl, 16);
    write32(nl, 4242, 4);
    write32(nl, 5, 8);
    write16(vm, 40);
    write32(vm, 1024, 4);
    write32(vm, 3, 8);
    expect(decodeSockaddr(nl)).to.deep.equal({ family: 'netlink', portId: 4242, groups: 5 });
    expect(decodeSockaddr(vm)).to.deep.equal({ family: 'vsock', cid: 3, port: 1024 });
    const packet = Buffer.from([17, 0, 8, 0, 1, 2]);
    expect(decodeSockaddr(packet)).to.deep.equal({ family: 'other', domain: LE ? 17 : 0x1100, bytes: '110008000102' });
    expect(decodeSockaddr(Buffer.from([2]))).to.deep.equal({ family: 'other', domain: 0, bytes: '02' });
    // Too short for its family: not decoded from bytes that are not there.
    expect(decodeSockaddr(nl.subarray(0, 8))).to.deep.include({ family: 'other', domain: 16 });
    expect(decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '::1', port: 1 }).subarray(0, 20))).to.deep.include({ family: 'other', domain: 10 });
  });

  it('refuses what cannot be written, with a TypeError (RangeError for a port)', () => {
    const cases: Array<[unknown, ErrorConstructor, RegExp]> = [
      [{ family: 'ipv4', address: '1.2.3', port: 1 }, TypeError, /not an IPv4 address/],
      [{ family: 'ipv4', address: 'localhost', port: 1 }, TypeError, /not an IPv4 address/],
      [{ family: 'ipv6', address: '127.0.0.1', port: 1 }, TypeError, /not an IPv6 address/],
      [{ family: 'ipv6', address: '::1%lo', port: 1 }, TypeError, /not an IPv6 address/],
      [{ family: 'ipv4', address: '1.2.3.4', port: 65536 }, RangeError, /port must be 0..65535/],
      [{ family: 'ipv4', address: '1.2.3.4', port: 1.5 }, RangeError, /port must be 0..65535/],
      [{ family: 'unix', path: '' }, TypeError, /path must be 1 to 107 bytes/],
      [{ family: 'unix', path: `/${'p'.repeat(107)}` }, TypeError, /path must be 1 to 107 bytes/],
      [{ family: 'unix', path: '/a\0b' }, TypeError, /must not contain NUL/],
      [{ family: 'unix', abstract: '' }, TypeError, /name must be 1 to 107 bytes/],
      [{ family: 'unix', abstract: 'a'.repeat(108) }, TypeError, /name must be 1 to 107 bytes/],
      [{ family: 'unix', abstract: 'é'.repeat(54) }, TypeError, /name must be 1 to 107 bytes/],
      [{ family: 'unix', path: 42 }, TypeError, /path must be a string/],
      [{ family: 'unix' }, TypeError, /path must be a string/],
      [{ family: 'ipx', address: '1' }, TypeError, /address.family must be 'ipv4', 'ipv6' or 'unix', got "ipx"/],
    ];
    for (const [address, type, message] of cases) {
      expect(() => encodeSockaddr(address as BindAddress), JSON.stringify(address)).to.throw(type, message);
    }
  });
});

describe('sockaddr: addresses the kernel reports', () => {
  const r = useResources();
  const n = native();
  const c = n.constants;

  it('a link-local IPv6 bind: the scope id comes back, and prints as systemd does', () => {
    const lo = Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8'));
    const fd = r.fd(n.socket(c.AF_INET6, c.SOCK_DGRAM | c.SOCK_CLOEXEC, 0));
    // IPV6_FREEBIND (linux/in6.h: 78): fe80::1 need not be configured on lo for the bind.
    n.setsockopt(fd, c.IPPROTO_IPV6, 78, 1);
    n.bind(fd, encodeSockaddr({ family: 'ipv6', address: 'fe80::1', port: 0, scopeId: lo }));
    const local = decodeSockaddr(n.inspect(fd).local!) as InetAddress;
    expect([local.address, local.scopeId, local.flowinfo]).to.deep.equal(['fe80::1', lo, 0]);
    expect(local.port).to.be.above(0);
    expect(local.toString()).to.equal(`[fe80::1%${lo}]:${local.port}`);
  });

  it('an abstract name with NULs: what the kernel gives back is what was asked for', () => {
    const name = `\0${uniqueName()}\0`;
    const fd = r.fd(n.socket(c.AF_UNIX, c.SOCK_DGRAM | c.SOCK_CLOEXEC, 0));
    const asked = encodeSockaddr({ family: 'unix', abstract: name });
    n.bind(fd, asked);
    expect(n.inspect(fd).local).to.deep.equal(asked);
  });
});

describe('sockaddr: the lazy ip getter', () => {
  it('gives an Address4 or Address6 whose correctForm is the address (hex for a dotted tail)', () => {
    const v4 = decodeSockaddr(encodeSockaddr({ family: 'ipv4', address: '10.1.2.3', port: 1 })) as InetAddress;
    expect(v4.ip).to.be.instanceOf(Address4);
    expect(v4.ip.correctForm()).to.equal('10.1.2.3');
    const v6 = decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '2001:DB8:0:0:0:0:0:1', port: 1 })) as InetAddress;
    expect(v6.ip).to.be.instanceOf(Address6);
    expect(v6.ip.correctForm()).to.equal('2001:db8::1');
    expect(v6.ip.correctForm()).to.equal(v6.address);
    const mapped = decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '::ffff:192.0.2.1', port: 1 })) as InetAddress;
    const ip = mapped.ip as Address6;
    expect(ip.correctForm()).to.equal('::ffff:c000:201');
    expect([ip.is4(), ip.to4().correctForm()]).to.deep.equal([true, '192.0.2.1']);
  });

  it('is not in JSON, and ip-address is loaded only when it is read', () => {
    const decoded = decodeSockaddr(encodeSockaddr({ family: 'ipv4', address: '127.0.0.1', port: 80 }));
    expect(JSON.parse(JSON.stringify(decoded))).to.deep.equal({ address: '127.0.0.1', family: 'ipv4', port: 80, flowinfo: 0, scopeId: 0, v4Mapped: false });
    const module = fileURLToPath(new URL('../../src/core/sockaddr.js', import.meta.url));
    const script = `
      import { createRequire } from 'node:module';
      const { decodeSockaddr, encodeSockaddr } = await import(${JSON.stringify(module)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/ip-address/'));
      const a = decodeSockaddr(encodeSockaddr({ family: 'ipv6', address: '::1', port: 1 }));
      const before = loaded();
      const form = a.ip.correctForm();
      console.log(JSON.stringify([a.address, before, form, loaded()]));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(JSON.parse(out)).to.deep.equal(['::1', false, '::1', true]);
  });
});
