/**
 * The native TCP probe against loopback listeners (accept, refusal, a port in use) and, as root, a TUN
 * device of its own that swallows the SYN (a timeout). Every probe's descriptor and handles are gone
 * afterwards (tcpProbesActive).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { tcpProbe, tcpProbesActive } from './probe.js';
import { openTunDevice } from './tun.js';

const isRoot = process.getuid?.() === 0;

function listen(host = '127.0.0.1'): Promise<{ server: net.Server; port: number; conns: Array<{ socket: net.Socket; remotePort: number | undefined }> }> {
  const conns: Array<{ socket: net.Socket; remotePort: number | undefined }> = [];
  const server = net.createServer((s) => { conns.push({ socket: s, remotePort: s.remotePort }); s.on('error', () => undefined); });
  return new Promise((resolve) => server.listen(0, host, () => resolve({ server, port: (server.address() as net.AddressInfo).port, conns })));
}

/** A free local port: bound once, then released. */
async function freePort(host = '127.0.0.1'): Promise<number> {
  const { server, port } = await listen(host);
  await new Promise((r) => server.close(r));
  return port;
}

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  expect(tcpProbesActive()).toBe(0);
});

describe('tcpProbe', () => {
  it('reports an accepted connection, from the local port asked for, and resets it (no TIME_WAIT)', async () => {
    const { server, port, conns } = await listen();
    closers.push(() => new Promise((r) => server.close(r)));
    const localPort = await freePort();
    const r = await tcpProbe({ host: '127.0.0.1', port, localPort, timeoutMs: 2000 });
    expect(r.outcome).toBe('connected');
    expect(r.rttMs).toBeGreaterThanOrEqual(0);
    await expect.poll(() => conns.length).toBe(1);
    expect(conns[0]!.remotePort).toBe(localPort);
    // the server side ends with a reset, not a FIN
    await new Promise<void>((resolve) => conns[0]!.socket.destroyed ? resolve() : conns[0]!.socket.once('close', () => resolve()));
    // the same local port again at once: no TIME_WAIT holds it
    const again = await tcpProbe({ host: '127.0.0.1', port, localPort, timeoutMs: 2000 });
    expect(again.outcome).toBe('connected');
  });

  it('reports a refusal (an RST came back), IPv4 and IPv6', async () => {
    const r4 = await tcpProbe({ host: '127.0.0.1', port: await freePort(), timeoutMs: 2000 });
    expect(r4).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
    const r6 = await tcpProbe({ host: '::1', port: await freePort('::1'), timeoutMs: 2000 });
    expect(r6).toMatchObject({ outcome: 'refused', code: 'ECONNREFUSED' });
  });

  it('reports a local port it cannot bind as an error with its errno name', async () => {
    const { server, port } = await listen();
    closers.push(() => new Promise((r) => server.close(r)));
    const target = await listen();
    closers.push(() => new Promise((r) => target.server.close(r)));
    const r = await tcpProbe({ host: '127.0.0.1', port: target.port, localPort: port, timeoutMs: 2000 });
    expect(r).toMatchObject({ outcome: 'error', code: 'EADDRINUSE' });
  });

  it('refuses a name or a bad port before making a socket', async () => {
    await expect(tcpProbe({ host: 'localhost', port: 443, timeoutMs: 100 })).rejects.toThrow(/not an IP address/);
    await expect(tcpProbe({ host: '127.0.0.1', port: 0, timeoutMs: 100 })).rejects.toThrow(/port 1-65535/);
    await expect(tcpProbe({ host: '127.0.0.1', port: 443, localPort: 70000, timeoutMs: 100 })).rejects.toThrow(/localPort 0-65535/);
  });

  it.skipIf(!isRoot)('times out when nothing answers (a TUN device of its own swallows the SYN), the full timeout after a busy loop too', async () => {
    const name = `rvp${randomBytes(3).toString('hex')}`;
    const device = openTunDevice({ name, mode: 'tun' });
    closers.push(() => device.close());
    execFileSync('ip', ['addr', 'add', '198.18.201.1/30', 'dev', name]);
    execFileSync('ip', ['link', 'set', name, 'up']);
    // 120 ms of JavaScript in this loop iteration: libuv's cached clock is that much behind, and a
    // timeout counted from it would fire after 30 of the 150 ms
    const busyUntil = performance.now() + 120;
    while (performance.now() < busyUntil);
    const t0 = performance.now();
    const r = await tcpProbe({ host: '198.18.201.2', port: 443, timeoutMs: 150 });
    expect(r).toMatchObject({ outcome: 'timeout', code: 'ETIMEDOUT' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(149);
    expect(r.rttMs).toBeGreaterThanOrEqual(149);
    expect(r.rttMs).toBeLessThan(2000);
  });
});
