import net from 'node:net';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, CidrSet } from '@rvpn/config';
import { createCa, issueCertificate, type CertKeyPair } from '@rvpn/pki';
import { createDialer, createEgressProxy, parseAuthority, PathGate, type EgressOutcome, type EgressProxy } from './index.js';

let ca: CertKeyPair, server: CertKeyPair, client: CertKeyPair, otherCn: CertKeyPair, foreign: CertKeyPair;
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

beforeAll(async () => {
  ca = await createCa({ commonName: 'ca-vpn' });
  server = await issueCertificate(ca, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: ['vpn-seed-server'], ipAddresses: ['127.0.0.1'] });
  client = await issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' });
  otherCn = await issueCertificate(ca, { commonName: 'vpn-shoot-client', usage: 'client' });
  const otherCa = await createCa({ commonName: 'other-ca' });
  foreign = await issueCertificate(otherCa, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client' });
});

async function echoServer(): Promise<number> {
  const srv = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => srv.close(() => r())));
  return (srv.address() as net.AddressInfo).port;
}

async function startProxy(over: Partial<Parameters<typeof createEgressProxy>[0]> = {}) {
  const gate = over.gate ?? new PathGate();
  if (!over.gate) gate.set(true);
  const outcomes: EgressOutcome[] = [];
  const proxy: EgressProxy = createEgressProxy({
    host: '127.0.0.1',
    port: 0,
    tls: () => ({ ca: ca.certPem, cert: server.certPem, key: server.keyPem }),
    allowedCommonNames: ['kube-apiserver-http-proxy-client'],
    allowedDestinations: new CidrSet([Cidr.parse('127.0.0.0/8')]),
    gate,
    holdTimeoutMs: 2000,
    maxPending: 10,
    dialTimeoutMs: 2000,
    onOutcome: (o) => outcomes.push(o),
    ...over,
  });
  const { port } = await proxy.start();
  cleanup.push(() => proxy.stop());
  return { proxy, port, gate, outcomes };
}

/** Sends one CONNECT over mTLS; resolves with the status line and the live socket. */
function connect(port: number, target: string, id: CertKeyPair = client, method = 'CONNECT'): Promise<{ status: number; body: string; socket: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, cert: id.certPem, key: id.keyPem, servername: 'vpn-seed-server' });
    cleanup.push(() => void s.destroy());
    let buf = Buffer.alloc(0);
    s.once('secureConnect', () => s.write(`${method} ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed without an answer')));
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(buf.toString('latin1'))?.[1]);
      if (status !== 200) {
        s.once('end', () => resolve({ status, body: buf.subarray(end + 4).toString(), socket: s }));
        s.resume();
        return;
      }
      s.off('data', onData);
      resolve({ status, body: '', socket: s });
    };
    s.on('data', onData);
  });
}

describe('egress CONNECT proxy', () => {
  it('pipes an allowed destination', async () => {
    const echo = await echoServer();
    const { port, outcomes } = await startProxy();
    const { status, socket } = await connect(port, `127.0.0.1:${echo}`);
    expect(status).toBe(200);
    const got = new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
    socket.write('hello through the tunnel');
    expect(await got).toBe('hello through the tunnel');
    expect(outcomes).toEqual(['connected']);
  });

  it('refuses destinations outside the shoot networks with 403 and a reason', async () => {
    const { port, outcomes } = await startProxy({ allowedDestinations: new CidrSet([Cidr.parse('100.96.0.0/11')]) });
    const r = await connect(port, '127.0.0.1:22');
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/outside the shoot's networks/);
    expect(outcomes).toEqual(['forbidden']);
  });

  describe('overlapping networks (mapDestination)', () => {
    // the apiserver names the real shoot address 127.0.1.<n>; the tunnel carries it as 127.0.0.<n>
    const mapping = {
      allowedDestinations: new CidrSet([Cidr.parse('127.0.1.0/24')]),
      mapDestination: (h: string) => (h.startsWith('127.0.1.') ? h.replace('127.0.1.', '127.0.0.') : undefined),
    };

    it('checks the real target, dials its mapped address', async () => {
      const echo = await echoServer();
      const dialed: string[] = [];
      const { port, outcomes } = await startProxy({ ...mapping, dial: (host, p) => (dialed.push(host), Promise.resolve(net.connect({ host, port: p }))) });
      const { status, socket } = await connect(port, `127.0.1.1:${echo}`);
      expect(status).toBe(200);
      const got = new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
      socket.write('mapped');
      expect(await got).toBe('mapped');
      expect(dialed).toEqual(['127.0.0.1']);
      expect(outcomes).toEqual(['connected']);
    });

    it('answers 403 naming the address the apiserver used, for a target outside the real networks, the mapped range included', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const logger = { info: (o: object) => lines.push(o as Record<string, unknown>), warn: (o: object) => lines.push(o as Record<string, unknown>), debug() {} };
      const { port, outcomes } = await startProxy({ ...mapping, logger });
      for (const target of ['127.0.0.1:22', '10.0.0.1:443']) {
        const r = await connect(port, target);
        expect(r.status, target).toBe(403);
        expect(r.body.trimEnd()).toBe(`destination ${target} is outside the shoot's networks`);
      }
      expect(outcomes).toEqual(['forbidden', 'forbidden']);
      expect(lines[0]).toMatchObject({ outcome: 'forbidden', status: 403, destination: '127.0.0.1:22' });
    });

    it('a dial failure names the real target and the mapped one', async () => {
      const { port } = await startProxy({ ...mapping, dial: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) });
      const r = await connect(port, '127.0.1.9:80');
      expect(r.status).toBe(502);
      expect(r.body.trimEnd()).toBe('cannot connect to 127.0.1.9:80 (mapped to 127.0.0.9): connect ECONNREFUSED');
    });
  });

  it('refuses host names, other methods and foreign certificates', async () => {
    const { port, outcomes } = await startProxy();
    expect((await connect(port, 'kubernetes.default.svc:443')).status).toBe(400);
    expect((await connect(port, '127.0.0.1:80', client, 'GET')).status).toBe(405);
    expect((await connect(port, '127.0.0.1:80', otherCn)).status).toBe(403);
    await expect(connect(port, '127.0.0.1:80', foreign)).rejects.toThrow();
    expect(outcomes.slice(0, 3)).toEqual(['bad_request', 'method_not_allowed', 'unauthorized']);
  });

  it('holds a CONNECT while the path is down and completes it when the path returns', async () => {
    const echo = await echoServer();
    const gate = new PathGate();
    const { port, proxy } = await startProxy({ gate });
    const pendingReq = connect(port, `127.0.0.1:${echo}`);
    while (proxy.pending === 0) await new Promise((r) => setTimeout(r, 10));
    expect(proxy.pending).toBe(1);
    gate.set(true);
    expect((await pendingReq).status).toBe(200);
    expect(proxy.pending).toBe(0);
  });

  it('answers 503 with a reason when the path stays down past the hold time', async () => {
    const { port, outcomes } = await startProxy({ gate: new PathGate(), holdTimeoutMs: 200 });
    const r = await connect(port, '127.0.0.1:9');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/not connected/);
    expect(outcomes).toEqual(['no_path']);
  });

  it('caps the number of held requests', async () => {
    const { port, proxy, outcomes } = await startProxy({ gate: new PathGate(), holdTimeoutMs: 3000, maxPending: 1 });
    void connect(port, '127.0.0.1:9').catch(() => undefined);
    while (proxy.pending === 0) await new Promise((r) => setTimeout(r, 10));
    const second = await connect(port, '127.0.0.1:9');
    expect(second.status).toBe(503);
    expect(second.body).toMatch(/already waiting/);
    expect(outcomes).toEqual(['overloaded']);
  });

  it('answers 502 when the destination refuses', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { port } = await startProxy();
    const r = await connect(port, `127.0.0.1:${deadPort}`);
    expect(r.status).toBe(502);
    expect(r.body).toMatch(/ECONNREFUSED/);
  });

  it('keeps serving after garbage bytes', async () => {
    const echo = await echoServer();
    const { port } = await startProxy({ headerTimeoutMs: 300 });
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => undefined);
    raw.resume();
    await new Promise((r) => raw.once('connect', r));
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5]));
    await new Promise((r) => raw.once('close', r));
    expect((await connect(port, `127.0.0.1:${echo}`)).status).toBe(200);
  });
});

describe('egress CONNECT proxy against a hostile or broken client', () => {
  it('keeps listening after an error of the listening socket (EMFILE) and reports it', async () => {
    const echo = await echoServer();
    const errors: string[] = [];
    const { port, proxy } = await startProxy({ onAcceptError: (label) => errors.push(label) });
    expect(() => proxy.server!.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' }))).not.toThrow();
    expect(errors).toEqual(['EMFILE']);
    expect((await connect(port, `127.0.0.1:${echo}`)).status).toBe(200);
  });

  it('logs a repeated refusal once per interval, not once per request', async () => {
    const lines: string[] = [];
    const logger = { info: (_o: object, m?: string) => lines.push(m ?? ''), warn: (_o: object, m?: string) => lines.push(m ?? ''), debug: () => undefined };
    const { port, outcomes } = await startProxy({ logger, allowedDestinations: new CidrSet([Cidr.parse('100.96.0.0/11')]), refusalLogIntervalMs: 60_000 });
    for (let i = 0; i < 20; i++) expect((await connect(port, '127.0.0.1:22')).status).toBe(403);
    expect(outcomes.filter((o) => o === 'forbidden')).toHaveLength(20);
    expect(lines.filter((l) => /refused/.test(l))).toHaveLength(1);
  });

  it('holds a slow reader to bounded buffering: the upstream is paused, not queued in memory', async () => {
    // an upstream that writes as fast as it is allowed to (a shoot pod streaming logs)
    let written = 0;
    const limit = 400e6;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const fire = net.createServer((s) => {
      s.on('error', () => undefined);
      const pump = () => {
        while (written < limit) {
          written += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
      };
      pump();
    });
    await new Promise<void>((r) => fire.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => { fire.close(() => r()); }));
    const { port } = await startProxy();
    const { status, socket } = await connect(port, `127.0.0.1:${(fire.address() as net.AddressInfo).port}`);
    expect(status).toBe(200);
    socket.pause(); // the apiserver side stops reading
    await new Promise((r) => setTimeout(r, 1500));
    const after = written;
    await new Promise((r) => setTimeout(r, 500));
    // what was written sits in kernel socket buffers (a few MB on loopback) and the streams'
    // high-water marks; without backpressure all 400 MB would be accepted in this time
    expect(written).toBe(after);
    expect(written).toBeLessThan(40e6);
  });
});

describe('parseAuthority', () => {
  it('accepts IP literals only', () => {
    expect(parseAuthority('100.96.1.10:8080')).toEqual({ host: '100.96.1.10', port: 8080 });
    expect(parseAuthority('[fd10:96:1::10]:8080')).toEqual({ host: 'fd10:96:1::10', port: 8080 });
    expect(parseAuthority('example.com:443')).toBeUndefined();
    expect(parseAuthority('1.2.3.4:0')).toBeUndefined();
    expect(parseAuthority('1.2.3.4:70000')).toBeUndefined();
    expect(parseAuthority('1.2.3.4')).toBeUndefined();
  });
});

describe('createDialer', () => {
  /** A connect that never answers until aborted (a SYN into a dead path), then answers on the next call. */
  function pathThatMoves() {
    let calls = 0;
    const connect = (_host: string, _port: number, timeoutMs: number, signal: AbortSignal) => new Promise<net.Socket>((resolve, reject) => {
      calls++;
      if (calls > 1) return resolve(new net.Socket());
      const t = setTimeout(() => reject(Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' })), timeoutMs);
      signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); }, { once: true });
    });
    return { connect, calls: () => calls };
  }

  it('retryPending() makes an unanswered attempt again at once (the routes moved), instead of after its timeout', async () => {
    const p = pathThatMoves();
    const d = createDialer({ timeoutMs: 10_000, attemptMs: 5_000, connect: p.connect });
    const t0 = Date.now();
    const sock = d.dial('10.0.0.1', 443, new AbortController().signal);
    await new Promise((r) => setTimeout(r, 20));
    expect(d.retryPending()).toBe(1);
    const s = await sock;
    s.destroy();
    expect(p.calls()).toBe(2);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(d.retryPending()).toBe(0);
  });

  it('without a retry, an attempt times out and is made again; the overall timeout ends it with ETIMEDOUT', async () => {
    const p = pathThatMoves();
    const d = createDialer({ timeoutMs: 1_000, attemptMs: 50, connect: p.connect });
    (await d.dial('10.0.0.1', 443, new AbortController().signal)).destroy();
    expect(p.calls()).toBe(2);
    const never = createDialer({ timeoutMs: 120, attemptMs: 50, connect: (_h, _p, ms, signal) => new Promise((_r, reject) => {
      const t = setTimeout(() => reject(Object.assign(new Error('no answer'), { code: 'ETIMEDOUT' })), ms);
      signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); }, { once: true });
    }) });
    await expect(never.dial('10.0.0.1', 443, new AbortController().signal)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });

  it('an aborted dial (the proxy stopping) is not retried', async () => {
    const p = pathThatMoves();
    const d = createDialer({ timeoutMs: 10_000, attemptMs: 5_000, connect: p.connect });
    const ac = new AbortController();
    const dial = d.dial('10.0.0.1', 443, ac.signal);
    await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await expect(dial).rejects.toThrow();
    expect(p.calls()).toBe(1);
  });
});
