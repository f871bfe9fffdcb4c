/*
 * HandoverChannel: JSON messages and fds on a seqpacket socket, read in the event loop. The two
 * ways its peer can go away, and a socket so full that a send must wait, while reading goes on.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { HandoverChannel } from '../../src/service/handover-channel.js';
import { native } from '../../src/native/addon.js';
import { useResources } from '../support/resources.js';

const n = native();

describe('HandoverChannel', () => {
  const r = useResources();

  function pair(): [HandoverChannel, HandoverChannel] {
    const [a, b] = n.seqpacketPair();
    const channels = [new HandoverChannel(a!), new HandoverChannel(b!)] as [HandoverChannel, HandoverChannel];
    r.defer(() => channels.forEach((c) => c.close()));
    return channels;
  }

  it('a send that finds the socket full waits for room, and the channel reads meanwhile', async () => {
    const [fd, peer] = n.seqpacketPair().map((f) => r.fd(f)) as [number, number];
    const a = new HandoverChannel(n.dup(fd));
    r.defer(() => a.close());
    const got: unknown[] = [];
    a.on('message', (message) => got.push(message));
    // The peer reads nothing until told: a's socket fills up.
    const big = 'x'.repeat(16 * 1024);
    let sent = 0;
    while (a.trySend({ big, i: sent })) sent++;
    expect(sent).to.be.above(0);
    let done = false;
    const waiting = a.send({ last: true }).then(() => (done = true));
    // a reads what the peer sends while its own send waits.
    n.sendFds(peer, Buffer.from(JSON.stringify({ hello: 1 })), []);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(got).to.deep.equal([{ hello: 1 }]);
    expect(done, 'no room yet').to.equal(false);
    const received: unknown[] = [];
    const drain = (): void => {
      for (let m = n.receiveFds(peer); m; m = n.receiveFds(peer)) received.push(JSON.parse(m.data.toString()));
    };
    drain();
    await waiting;
    drain();
    expect(received).to.have.length(sent + 1);
    expect(received.at(-1)).to.deep.equal({ last: true });
  });

  it('the peer closes its end: end', async () => {
    const [a, b] = pair();
    const ended = once(a, 'end');
    b.close();
    await ended;
  });

  it('the peer dies with messages of ours unread: end, not an error', async () => {
    const [fd, peer] = n.seqpacketPair() as [number, number];
    const a = new HandoverChannel(fd);
    r.defer(() => a.close());
    const errors: Error[] = [];
    a.on('error', (error) => errors.push(error));
    await a.send({ unread: 1 });
    // The peer's socket goes without reading it, as a killed process's does.
    n.close(peer);
    await Promise.race([once(a, 'end'), new Promise((_, reject) => setTimeout(() => reject(new Error(`no end; errors: ${errors.map((e) => e.message).join(', ')}`)), 2000))]);
    expect(errors).to.deep.equal([]);
  });
});
