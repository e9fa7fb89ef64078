/**
 * The real TUN device, as root: opened in the root namespace, moved into a namespace created for the
 * test (the fd stays valid), addressed there; the namespace's own kernel answers our echo requests.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeDeviceCompliance } from './testing/device-compliance.js';
import { openTunDevice } from './tun.js';

const isRoot = process.getuid?.() === 0;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function tunInNamespace(mode: 'tun' | 'tap' = 'tun', maxBatchPackets = 32, offload = false) {
  const tag = randomBytes(3).toString('hex');
  const ns = `rvt${tag}`;
  ip('netns', 'add', ns);
  try {
    const device = openTunDevice({ name: `rvt${tag}`, mode, maxBatchPackets, offload });
    ip('link', 'set', device.name, 'netns', ns);
    ip('-n', ns, 'addr', 'add', '198.18.200.1/30', 'dev', device.name);
    ip('-n', ns, 'link', 'set', device.name, 'up');
    return {
      device,
      ns,
      localAddress: '198.18.200.1',
      peerAddress: '198.18.200.2',
      maxBatchPackets,
      cleanup: async () => {
        device.close();
        ip('netns', 'del', ns);
      },
    };
  } catch (err) {
    ip('netns', 'del', ns);
    throw err;
  }
}

describeDeviceCompliance('real TUN', () => tunInNamespace(), { ...(isRoot ? {} : { skip: 'needs root' }) });
// opened with a virtio-net header, offload off: reads strip the header, writes add a zero one
describeDeviceCompliance('real TUN opened for offload', () => tunInNamespace('tun', 32, true), { ...(isRoot ? {} : { skip: 'needs root' }) });

/** Runs a Python snippet in a namespace; resolves with its stdout. */
function pyIn(ns: string, code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('exit', (c) => (c === 0 ? resolve(out.trim()) : reject(new Error(`python in ${ns} exited ${c}: ${err}`))));
  });
}

describe.skipIf(!isRoot)('real TUN with offload on (TSO)', () => {
  it('carries a TCP stream between two namespaces as super-packets, byte for byte', async () => {
    const tag = randomBytes(3).toString('hex');
    const [nsA, nsB] = [`rvoa${tag}`, `rvob${tag}`];
    ip('netns', 'add', nsA);
    ip('netns', 'add', nsB);
    const devs: ReturnType<typeof openTunDevice>[] = [];
    try {
      for (const [ns, own, other] of [[nsA, '198.18.201.1', '198.18.202.0/24'], [nsB, '198.18.202.1', '198.18.201.0/24']] as const) {
        const d = openTunDevice({ name: `rvo${ns.slice(3, 4)}${tag}`, offload: true });
        devs.push(d);
        ip('link', 'set', d.name, 'netns', ns);
        ip('-n', ns, 'addr', 'add', `${own}/32`, 'dev', d.name);
        ip('-n', ns, 'link', 'set', d.name, 'up');
        ip('-n', ns, 'route', 'add', other, 'dev', d.name);
      }
      const [a, b] = devs as [ReturnType<typeof openTunDevice>, ReturnType<typeof openTunDevice>];
      a.setOffload(true);
      b.setOffload(true);
      // the "tunnel": what one device reads, the other writes, headers and all
      a.start((batch, gso) => b.writeBatch(batch, gso));
      b.start((batch, gso) => a.writeBatch(batch, gso));
      const size = 32 * 1024 * 1024;
      const server = pyIn(nsB, `
import socket, hashlib
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('198.18.202.1', 5555)); s.listen(1)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 20)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest())`);
      await new Promise((r) => setTimeout(r, 300));
      const client = await pyIn(nsA, `
import socket, hashlib
data = hashlib.sha256(b'rvpn').digest() * (${size} // 32)
s = socket.create_connection(('198.18.202.1', 5555), timeout=30); s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest())`);
      expect(await server).toBe(client);
      const sa = a.stats();
      expect(sa.offload).toBe(true);
      expect(sa.gsoPacketsRead).toBeGreaterThan(0);
      // far fewer reads than 1448-byte segments: the kernel handed over super-packets
      expect(sa.packetsRead).toBeLessThan(size / 1448 / 4);
      expect(b.stats().writeDrops).toBe(0);
    } finally {
      for (const d of devs) d.close();
      ip('netns', 'del', nsA);
      ip('netns', 'del', nsB);
    }
  }, 60_000);

  it('switches offload off again: plain reads, no super-packets', async () => {
    const h = await tunInNamespace('tun', 32, true);
    try {
      h.device.setOffload(true);
      expect(h.device.stats().offload).toBe(true);
      h.device.setOffload(false);
      expect(h.device.stats().offload).toBe(false);
      expect(() => openTunDevice({ mode: 'tap', offload: true })).toThrow(/TUN devices only/);
    } finally {
      await h.cleanup();
    }
  });
});

describe.skipIf(!isRoot)('real TUN specifics', () => {
  it('names the device, reports stats and disappears on close', async () => {
    const h = await tunInNamespace();
    try {
      expect(ip('-n', h.ns, 'link', 'show', h.device.name)).toContain(h.device.name);
      expect(h.device.stats()).toMatchObject({ packetsRead: 0, packetsWritten: 0 });
    } finally {
      await h.cleanup();
    }
  });

  it('opens TAP devices and toggles the carrier', async () => {
    const h = await tunInNamespace('tap');
    try {
      h.device.setCarrier(false);
      expect(ip('-n', h.ns, 'link', 'show', h.device.name)).toMatch(/NO-CARRIER/);
      h.device.setCarrier(true);
      expect(ip('-n', h.ns, 'link', 'show', h.device.name)).not.toMatch(/NO-CARRIER/);
    } finally {
      await h.cleanup();
    }
  });

  it('refuses an over-long name with a code', () => {
    expect(() => openTunDevice({ name: 'x'.repeat(16) })).toThrow(expect.objectContaining({ code: 'RVPN_ERR_TUN_OPEN' }));
  });
});
