import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { relaySockets, relayTotals, type RelayEnd, type SocketRelay } from './relay.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Everything a socket receives until it ends or closes. */
function collect(sock: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => {
    let done = false;
    const fin = () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } };
    sock.once('end', fin);
    sock.once('close', fin);
  });
}

/** The peer closed the connection: 'end' (a half-open socket stays open after it) or 'close'. */
const closed = (sock: net.Socket) => new Promise<void>((r) => {
  if (sock.readableEnded || sock.closed) return r();
  sock.once('end', () => r());
  sock.once('close', () => r());
  sock.resume();
});

/**
 * client ──► proxy (relays) ──► upstream. Each test gets the client socket, the upstream's socket,
 * the relay and its end.
 */
async function setup(opts: { toA?: Buffer; toB?: Buffer; idleMs?: number; clientFirst?: string; beforeRelay?: (a: net.Socket, b: net.Socket) => void | Promise<void> } = {}) {
  const ups: net.Socket[] = [];
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => ups.push(s));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  let relay: SocketRelay | undefined;
  let endResolve!: (e: RelayEnd) => void;
  const ended = new Promise<RelayEnd>((r) => { endResolve = r; });
  const relayed = new Promise<void>((resolveRelayed, rejectRelayed) => {
    const proxy = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (a) => {
      const b = net.connect({ port: (upstream.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
      b.pause();
      b.once('connect', async () => {
        try {
          await opts.beforeRelay?.(a, b);
          relay = relaySockets(a, b, { toA: opts.toA, toB: opts.toB, idleMs: opts.idleMs ?? 0, onEnd: endResolve });
          resolveRelayed();
        } catch (err) {
          rejectRelayed(err);
        }
      });
    });
    servers.push(proxy, upstream);
    proxy.listen(0, '127.0.0.1', () => {
      client = net.connect({ port: (proxy.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
      if (opts.clientFirst) client.write(opts.clientFirst);
    });
  });
  let client!: net.Socket;
  await relayed;
  while (ups.length === 0) await new Promise((r) => setTimeout(r, 5));
  sockets.push(client, ups[0]!);
  return { client, up: ups[0]!, relay: relay!, ended };
}

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

describe('relaySockets (native relay)', () => {
  it('relays both ways in order, the handed-in bytes first, and counts them', async () => {
    const before = relayTotals();
    const { client, up, ended } = await setup({ toA: Buffer.from('HELLO-A|'), toB: Buffer.from('HELLO-B|') });
    const atClient = collect(client);
    const atUp = collect(up);
    // more than the kernel buffers hold, so the relay must wait for writability both ways
    const fromClient = randomBytes(8 * 1024 * 1024);
    const fromUp = randomBytes(6 * 1024 * 1024);
    client.end(fromClient);
    up.end(fromUp);
    const [gotUp, gotClient, end] = await Promise.all([atUp, atClient, ended]);
    expect(sha(gotUp)).toBe(sha(Buffer.concat([Buffer.from('HELLO-B|'), fromClient])));
    expect(sha(gotClient)).toBe(sha(Buffer.concat([Buffer.from('HELLO-A|'), fromUp])));
    expect(end).toEqual({ reason: 'closed', errno: 0, bytesAtoB: fromClient.length, bytesBtoA: fromUp.length });
    const after = relayTotals();
    expect(after.bytesA - before.bytesA).toBe(fromClient.length);
    expect(after.bytesB - before.bytesB).toBe(fromUp.length);
    expect(after.started - before.started).toBe(1);
    expect(after.active).toBe(before.active);
  });

  it('keeps a half-closed connection: the client ends, the upstream still answers, then both close', async () => {
    const { client, up, ended } = await setup();
    const atClient = collect(client);
    const upEnded = new Promise<Buffer>((r) => { const c: Buffer[] = []; up.on('data', (d: Buffer) => c.push(d)); up.once('end', () => r(Buffer.concat(c))); });
    client.end('request');
    expect((await upEnded).toString()).toBe('request');
    // the upstream answers after the client's FIN reached it
    up.end('answer after the half-close');
    expect((await atClient).toString()).toBe('answer after the half-close');
    expect((await ended).reason).toBe('closed');
  });

  it('passes on bytes the client stream had already buffered', async () => {
    const { client, up } = await setup({
      clientFirst: 'early',
      beforeRelay: async (a) => {
        // bytes arrive while the proxy still holds the socket (as after a CONNECT head)
        a.resume();
        const first = await new Promise<Buffer>((r) => a.once('data', r));
        a.pause();
        a.unshift(first);
      },
    });
    const got = collect(up);
    client.end('|late');
    expect((await got).toString()).toBe('early|late');
  }, 10_000);

  it('holds at most one read (64 KiB) for a receiver that does not read; the sender is pushed back through TCP', async () => {
    const { client, up, relay } = await setup();
    client.pause(); // the client reads nothing
    const chunk = Buffer.alloc(1024 * 1024, 1);
    const total = 48 * chunk.length;
    for (let i = 0; i < 48; i++) up.write(chunk);
    await new Promise((r) => setTimeout(r, 300));
    const s = relay.stats();
    expect(s.running).toBe(true);
    expect(s.pendingToA).toBeLessThanOrEqual(64 * 1024);
    // what the relay took is bounded by the kernel's buffers, not by what the sender offered: the rest
    // still waits in the upstream's own stream
    expect(up.writableLength).toBeGreaterThan(0);
    expect(s.bytesBtoA!).toBeLessThan(total / 2);
    // once the client reads, everything arrives
    let got = 0;
    await new Promise<void>((r) => { client.on('data', (d: Buffer) => { got += d.length; if (got === total) r(); }); client.resume(); });
    expect(relay.stats().pendingToA).toBe(0);
  });

  it('ends with error and the errno on a reset, and closes the other side', async () => {
    const { client, up, ended } = await setup();
    const clientClosed = closed(client);
    client.on('error', () => undefined);
    up.resetAndDestroy();
    const end = await ended;
    expect(end.reason).toBe('error');
    expect(end.errno).toBe(104); // ECONNRESET
    await clientClosed;
  });

  it('ends an idle relay after idleMs, closing both connections; traffic keeps it open', async () => {
    const { client, up, ended } = await setup({ idleMs: 300 });
    client.on('error', () => undefined);
    up.on('error', () => undefined);
    up.on('data', () => undefined);
    const t0 = Date.now();
    // a byte every 100 ms for 500 ms keeps it alive past the first idle period
    for (let i = 0; i < 6; i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      client.write('x');
    }
    const last = Date.now();
    const end = await ended;
    expect(end.reason).toBe('idle');
    expect(end.bytesAtoB).toBe(6);
    expect(last - t0).toBeGreaterThanOrEqual(450);
    expect(Date.now() - last).toBeGreaterThanOrEqual(280);
    await Promise.all([closed(client), closed(up)]);
  });

  it('stop() closes both connections, reports once, and leaves no descriptor behind', async () => {
    const fds = openFds();
    for (let i = 0; i < 20; i++) {
      const { client, up, relay, ended } = await setup();
      client.on('error', () => undefined);
      up.on('error', () => undefined);
      let calls = 0;
      void ended.then(() => calls++);
      relay.stop();
      relay.stop();
      expect(await ended).toMatchObject({ reason: 'stopped', errno: 0 });
      expect(relay.stats()).toEqual({ running: false });
      await Promise.all([closed(client), closed(up)]);
      expect(calls).toBe(1);
      for (const s of servers.splice(0)) s.close();
      for (const s of sockets.splice(0)) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(openFds()).toBeLessThanOrEqual(fds);
  });

  it('refuses sockets with bytes queued for writing, or without a descriptor, and leaves them as they were', async () => {
    await expect(setup({
      beforeRelay: (a) => {
        // a write to a socket whose peer does not read fills the kernel and queues in the stream
        a.write(Buffer.alloc(32 * 1024 * 1024));
      },
    })).rejects.toMatchObject({ code: 'RVPN_ERR_RELAY_HANDOVER' });
    const s = new net.Socket();
    expect(() => relaySockets(s, s, { idleMs: 0, onEnd: () => undefined })).toThrow(expect.objectContaining({ code: 'RVPN_ERR_RELAY_HANDOVER' }));
    expect(() => relaySockets(s, s, { idleMs: -1, onEnd: () => undefined })).toThrow(/idleMs/);
  });
});
