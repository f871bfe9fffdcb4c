import { createServer, type Server } from 'node:http';
import { expect } from 'chai';
import { WebSocketServer } from 'ws';
import { handOverWebSockets } from '../../adapters/ws.js';
import type { Upgrader } from '../../src/index.js';

/*
 * sd-activate/ws's arguments: what is not an Upgrader, a WebSocketServer that tracks its clients or
 * valid options is a TypeError at the call, before anything listens to anything.
 */

describe('sd-activate/ws: arguments', function () {
  let http: Server;
  let wss: WebSocketServer;
  /** Only what the argument check looks at: no upgrade can run on it. */
  const up = { on: () => up, connections: () => ({}) } as unknown as Upgrader;

  beforeEach(() => {
    http = createServer();
    wss = new WebSocketServer({ server: http });
  });
  afterEach(() => {
    wss.close();
    http.close();
  });

  it('up must be an Upgrader', function () {
    for (const bad of [undefined, null, {}, wss]) {
      expect(() => handOverWebSockets(bad as unknown as Upgrader, wss)).to.throw(TypeError, /up must be an Upgrader/);
    }
  });

  it('wss must be a WebSocketServer that tracks its clients', function () {
    for (const bad of [undefined, null, {}, http]) {
      expect(() => handOverWebSockets(up, bad as unknown as WebSocketServer)).to.throw(TypeError, /wss must be a WebSocketServer/);
    }
    const untracked = new WebSocketServer({ noServer: true, clientTracking: false });
    expect(() => handOverWebSockets(up, untracked)).to.throw(TypeError, /clientTracking/);
  });

  it('options: state a function, boundaryTimeoutMs a number of milliseconds above 0', function () {
    expect(() => handOverWebSockets(up, wss, null as unknown as object)).to.throw(TypeError, /options must be an object/);
    expect(() => handOverWebSockets(up, wss, { state: 'user' as unknown as () => unknown })).to.throw(TypeError, /options\.state/);
    for (const bad of [0, -1, Number.NaN, Infinity, '100', 2 ** 31]) {
      expect(() => handOverWebSockets(up, wss, { boundaryTimeoutMs: bad as number }), String(bad)).to.throw(TypeError, /boundaryTimeoutMs/);
    }
  });
});
