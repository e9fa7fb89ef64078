/**
 * Listener and dialer over real TLS on loopback with certificates made here, fake devices and a
 * TunnelDataPath on each side: the whole library minus the kernel.
 */
import net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { createShootPki, shootIdentityUri, type ShootPki } from '@rvpn/pki';
import { TunnelDataPath } from './datapath.js';
import { TunnelDialer } from './dialer.js';
import { authorizeByIdentity, TunnelListener } from './listener.js';
import type { LocalHello, TunnelSession } from './session.js';
import { TUNNEL_SOCKET_CAPS, type SocketBufferCaps } from './sockopt.js';
import { createFakeDevice, type FakeDevice } from './testing/fake-device.js';
import { icmpEcho, parseIcmpEcho } from './testing/packets.js';
import { receiveBuffers } from './testing/sockets.js';

let pki: ShootPki;
let other: ShootPki;
const NS = 'shoot--test--one';
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) { const f = cleanups.pop()!; const t0 = Date.now(); await f(); if (process.env.DEBUG_CLEANUP) console.log("cleanup", f.toString().slice(0, 60), Date.now() - t0); }
});
beforeAll(async () => {
  pki = await createShootPki({ namespace: NS });
  other = await createShootPki({ namespace: 'shoot--test--two' });
});

const base = { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 600, vpnNetwork: 'fd8f:6d53:b97a:1::/96', mtu: 1500 };
const seedHello = (): LocalHello => ({ ...base, role: 'seed', identity: 'seed', assignment: { seedAddress: 'fd8f:6d53:b97a:1::1', shootAddress: 'fd8f:6d53:b97a:1::2', prefixLength: 96 } });
const shootHello = (): LocalHello => ({ ...base, role: 'shoot', identity: 'shoot' });
const until = async (cond: () => boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 10));
  }
};

async function seedSide(opts: { port?: number; maxPendingHandshakes?: number; tlsHandshakeTimeoutMs?: number; handshakeTimeoutMs?: number; socketBuffers?: SocketBufferCaps } = {}) {
  const device = createFakeDevice();
  const datapath = new TunnelDataPath({ device, inboundFilter: { allowSource: new CidrSet([Cidr.parse('100.96.0.0/11')]) } });
  datapath.start();
  const refused: string[] = [];
  const sessions: TunnelSession[] = [];
  const listener = new TunnelListener({
    host: '127.0.0.1',
    port: opts.port ?? 0,
    tls: { ca: pki.ca.certPem, cert: pki.server.certPem, key: pki.server.keyPem },
    authorize: authorizeByIdentity({ allowedCommonNames: ['vpn-shoot-client'], requiredUri: shootIdentityUri(NS) }),
    hello: seedHello,
    onSession: (s) => { sessions.push(s); datapath.attach(s); },
    onRefused: (code) => refused.push(code),
    ...(opts.maxPendingHandshakes !== undefined ? { maxPendingHandshakes: opts.maxPendingHandshakes } : {}),
    ...(opts.tlsHandshakeTimeoutMs !== undefined ? { tlsHandshakeTimeoutMs: opts.tlsHandshakeTimeoutMs } : {}),
    ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
    ...(opts.socketBuffers ? { socketBuffers: opts.socketBuffers } : {}),
  });
  const { port } = await listener.start();
  cleanups.push(() => listener.stop());
  return { device, datapath, listener, port, refused, sessions };
}

function shootSide(port: number, opts: { client?: { certPem: string; keyPem: string }; ca?: string; via?: { proxyHost: string; proxyPort: number; target: string; headers?: Record<string, string> }; protocolMinor?: number; socketBuffers?: SocketBufferCaps } = {}) {
  const device: FakeDevice = createFakeDevice();
  const datapath = new TunnelDataPath({ device });
  datapath.start();
  const errors: string[] = [];
  const client = opts.client ?? pki.shootClient;
  const dialer = new TunnelDialer({
    target: { host: '127.0.0.1', port },
    ...(opts.via ? { via: opts.via } : {}),
    tls: { ca: opts.ca ?? pki.ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'vpn-seed-server' },
    hello: shootHello,
    onSession: (s) => datapath.attach(s),
    onDialError: (code) => errors.push(code),
    backoff: { minMs: 20, maxMs: 200 },
    ...(opts.protocolMinor !== undefined ? { protocolMinor: opts.protocolMinor } : {}),
    ...(opts.socketBuffers ? { socketBuffers: opts.socketBuffers } : {}),
  });
  dialer.start();
  cleanups.push(() => dialer.stop());
  return { device, datapath, dialer, errors };
}

describe('tunnel over TLS', () => {
  it('carries packets between the two devices and drops spoofed sources at the seed', async () => {
    const seed = await seedSide();
    const shoot = shootSide(seed.port);
    await until(() => shoot.dialer.state === 'connected' && seed.sessions.length === 1);
    // seed kernel → seed device → tunnel → shoot device
    seed.device.inject([icmpEcho('10.1.0.20', '100.96.1.10', 7, 1)]);
    await until(() => shoot.device.written.length === 1);
    expect(parseIcmpEcho(shoot.device.written[0]!)).toMatchObject({ src: '10.1.0.20', dst: '100.96.1.10', seq: 1 });
    // shoot kernel answers; a spoofed packet rides along
    shoot.device.inject([icmpEcho('100.96.1.10', '10.1.0.20', 7, 1, { reply: true }), icmpEcho('10.1.0.30', '10.1.0.20', 7, 2)]);
    await until(() => seed.device.written.length === 1 && seed.datapath.drops.spoofed_source === 1);
    expect(parseIcmpEcho(seed.device.written[0]!)).toMatchObject({ src: '100.96.1.10', type: 0 });
  });

  it('caps the kernel buffers of both ends when asked (socketBuffers), and leaves them to the kernel otherwise', async () => {
    // ss reports the receive buffer of each end of the connection (the kernel doubles SO_RCVBUF)
    const rb = (port: number, side: 'sport' | 'dport') => receiveBuffers(`${side} = :${port}`)[0] ?? NaN;
    const capped = await seedSide({ socketBuffers: TUNNEL_SOCKET_CAPS });
    const cappedShoot = shootSide(capped.port, { socketBuffers: TUNNEL_SOCKET_CAPS });
    await until(() => cappedShoot.dialer.state === 'connected' && capped.sessions.length === 1);
    expect(rb(capped.port, 'sport')).toBe(2 * TUNNEL_SOCKET_CAPS.receiveBytes);
    expect(rb(capped.port, 'dport')).toBe(2 * TUNNEL_SOCKET_CAPS.receiveBytes);
    expect(capped.listener.stats.capFailures + cappedShoot.dialer.capFailures).toBe(0);
    const plain = await seedSide();
    const plainShoot = shootSide(plain.port);
    await until(() => plainShoot.dialer.state === 'connected' && plain.sessions.length === 1);
    expect(rb(plain.port, 'sport')).not.toBe(2 * TUNNEL_SOCKET_CAPS.receiveBytes);
    expect(rb(plain.port, 'dport')).not.toBe(2 * TUNNEL_SOCKET_CAPS.receiveBytes);
  });

  it('refuses a client from another CA at TLS, and keeps serving', async () => {
    const seed = await seedSide();
    const bad = shootSide(seed.port, { client: other.shootClient, ca: pki.ca.certPem });
    await until(() => bad.errors.length >= 1 && seed.refused.length >= 1);
    expect(bad.errors[0]).toBe('RVPN_ERR_TUNNEL_TLS');
    expect(seed.refused[0]).toBe('RVPN_ERR_TUNNEL_TLS');
    await bad.dialer.stop();
    const good = shootSide(seed.port);
    await until(() => good.dialer.state === 'connected');
  });

  it("refuses another shoot's identity and a wrong common name with RVPN_ERR_TUNNEL_UNAUTHORIZED", async () => {
    const seed = await seedSide();
    // Same CA, but the certificate binds another shoot.
    const { issueCertificate } = await import('@rvpn/pki');
    const foreignShoot = await issueCertificate(pki.ca, { commonName: 'vpn-shoot-client', usage: 'client', uris: [shootIdentityUri('shoot--test--two')] });
    const wrongCn = await issueCertificate(pki.ca, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' });
    const a = shootSide(seed.port, { client: foreignShoot });
    const b = shootSide(seed.port, { client: wrongCn });
    await until(() => a.errors.length >= 1 && b.errors.length >= 1);
    expect(a.errors[0]).toBe('RVPN_ERR_TUNNEL_UNAUTHORIZED');
    expect(b.errors[0]).toBe('RVPN_ERR_TUNNEL_UNAUTHORIZED');
    expect(a.dialer.state).not.toBe('stopped');
  });

  it('connects a client one minor version older', async () => {
    const seed = await seedSide();
    const shoot = shootSide(seed.port, { protocolMinor: 0 });
    await until(() => seed.sessions.length === 1);
    expect(seed.sessions[0]!.negotiatedMinor).toBe(0);
    seed.device.inject([icmpEcho('10.1.0.20', '100.96.1.10', 1, 1)]);
    await until(() => shoot.device.written.length === 1);
  });

  it('survives garbage on the listener port', async () => {
    const seed = await seedSide();
    for (const junk of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5]), Buffer.alloc(3000, 0xff)]) {
      const s = net.connect(seed.port, '127.0.0.1');
      s.on('error', () => undefined);
      s.resume(); // read the server's alert, so that its close is seen
      await new Promise((r) => s.once('connect', r));
      s.write(junk);
      await new Promise((r) => s.once('close', r));
    }
    const shoot = shootSide(seed.port);
    await until(() => shoot.dialer.state === 'connected');
    expect(seed.refused.length).toBeGreaterThanOrEqual(2);
  });

  it('dials through a CONNECT proxy, keeps retrying while the proxy refuses, and reconnects after a server restart', async () => {
    const seed = await seedSide();
    let refuse = true;
    const seen: string[] = [];
    const conns = new Set<net.Socket>();
    const proxy = net.createServer((c) => {
      conns.add(c);
      c.once('close', () => conns.delete(c));
      c.once('data', (head) => {
        seen.push(head.toString());
        if (refuse) {
          c.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
          return;
        }
        const up = net.connect(seed.port, '127.0.0.1', () => {
          c.write('HTTP/1.1 200 Connection established\r\n\r\n');
          c.pipe(up).pipe(c);
        });
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { proxy.close(() => r()); for (const c of conns) c.destroy(); }));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    const header = { 'X-Gardener-Destination': 'outbound|1194||vpn-seed-server.shoot--test--one.svc.cluster.local' };
    const shoot = shootSide(0, { via: { proxyHost: '127.0.0.1', proxyPort, target: 'vpn-seed-server:1194', headers: header } });
    await until(() => shoot.errors.filter((e) => e === 'RVPN_ERR_PROXY_STATUS').length >= 3);
    expect(shoot.dialer.state).not.toBe('stopped');
    expect(seen[0]).toMatch(/^CONNECT vpn-seed-server:1194 HTTP\/1\.1\r\n/);
    expect(seen[0]).toContain('X-Gardener-Destination: outbound|1194||vpn-seed-server.shoot--test--one.svc.cluster.local');
    refuse = false;
    await until(() => shoot.dialer.state === 'connected');
    const first = shoot.dialer.sessions;
    // Server goes away and comes back on the same port.
    await seed.listener.stop();
    const again = await seedSide({ port: seed.port });
    await until(() => shoot.dialer.sessions > first && again.sessions.length === 1);
  });
});

describe('tunnel listener under a handshake flood', () => {
  /** Opens `n` TCP connections that never send a byte; resolves with them once connected. */
  async function idle(port: number, n: number) {
    const socks = await Promise.all(Array.from({ length: n }, () => new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => undefined);
      s.resume();
    })));
    const closed = new Set<net.Socket>();
    for (const s of socks) s.once('close', () => closed.add(s));
    cleanups.push(() => { for (const s of socks) s.destroy(); });
    return { socks, closed };
  }

  it('holds at most maxPendingHandshakes unauthenticated connections and still admits a real client', async () => {
    const seed = await seedSide({ maxPendingHandshakes: 4, tlsHandshakeTimeoutMs: 60_000 });
    const { closed } = await idle(seed.port, 20);
    await until(() => closed.size >= 16);
    expect(seed.listener.pendingHandshakes).toBeLessThanOrEqual(4);
    expect(seed.refused.filter((c) => c === 'RVPN_ERR_TUNNEL_OVERLOADED').length).toBeGreaterThanOrEqual(16);
    const shoot = shootSide(seed.port);
    await until(() => shoot.dialer.state === 'connected' && seed.sessions.length === 1);
  });

  it('gives an unauthenticated client tlsHandshakeTimeoutMs to finish TLS', async () => {
    const seed = await seedSide({ tlsHandshakeTimeoutMs: 300 });
    const { closed } = await idle(seed.port, 3);
    const t0 = Date.now();
    await until(() => closed.size === 3, 3000);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(seed.refused).toContain('RVPN_ERR_TUNNEL_TLS');
  });

  it('refuses newcomers when every pending handshake has authenticated', async () => {
    const tls = await import('node:tls');
    const seed = await seedSide({ maxPendingHandshakes: 2, handshakeTimeoutMs: 60_000 });
    // two clients that finish TLS with a valid certificate and then never send HELLO
    const authed = await Promise.all([0, 1].map(() => new Promise<import('node:tls').TLSSocket>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: seed.port, ca: pki.ca.certPem, cert: pki.shootClient.certPem, key: pki.shootClient.keyPem, servername: 'vpn-seed-server' }, () => resolve(s));
      s.on('error', () => undefined);
    })));
    cleanups.push(() => { for (const s of authed) s.destroy(); });
    await until(() => seed.listener.pendingHandshakes === 2 && [...(seed.listener as unknown as { pending: Map<unknown, { phase: string }> }).pending.values()].every((p) => p.phase === 'hello'));
    const { closed } = await idle(seed.port, 1);
    await until(() => closed.size === 1);
    expect(authed.every((s) => !s.destroyed)).toBe(true);
    expect(seed.refused).toContain('RVPN_ERR_TUNNEL_OVERLOADED');
  });

  it('keeps listening after an error of the listening socket (EMFILE) and counts it', async () => {
    const errors: string[] = [];
    const listener = new TunnelListener({
      host: '127.0.0.1', port: 0,
      tls: { ca: pki.ca.certPem, cert: pki.server.certPem, key: pki.server.keyPem },
      authorize: authorizeByIdentity({ allowedCommonNames: ['vpn-shoot-client'] }),
      hello: seedHello,
      onSession: () => undefined,
      onAcceptError: (label) => errors.push(label),
    });
    const { port } = await listener.start();
    cleanups.push(() => listener.stop());
    const server = (listener as unknown as { server: net.Server }).server;
    // what libuv reports when accept(2) fails for lack of descriptors
    expect(() => server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' }))).not.toThrow();
    expect(errors).toEqual(['EMFILE']);
    expect(listener.stats.acceptErrors).toBe(1);
    const shoot = shootSide(port);
    await until(() => shoot.dialer.state === 'connected');
  });
});
