/**
 * The real TUN device, as root: opened in the root namespace, moved into a namespace created for the
 * test (the fd stays valid), addressed there; the namespace's own kernel answers our echo requests.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeDeviceCompliance } from './testing/device-compliance.js';
import { openTunDevice } from './tun.js';
import { packBatch, unpackBatch } from './device.js';
import { splitGso } from './gso-split.js';
import { coalesceTcp, type CoalesceStats } from './gro.js';

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

/**
 * Sends `size` bytes over TCP from a client in `from` to a server in `to` listening on addr:port;
 * resolves with what each side printed ("<bytes> <sha256>"), so the two must be equal.
 */
async function streamSha256(from: string, to: string, addr: string, port: number, size: number, family: 'AF_INET' | 'AF_INET6' = 'AF_INET'): Promise<[string, string]> {
  const server = pyIn(to, `
import socket, hashlib
s = socket.socket(socket.${family}); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('${addr}', ${port})); s.listen(1)
s.settimeout(20); c, _ = s.accept(); c.settimeout(10); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 20)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest())`);
  await new Promise((r) => setTimeout(r, 300));
  const client = await pyIn(from, `
import socket, hashlib
data = hashlib.sha256(b'rvpn').digest() * (${size} // 32)
s = socket.create_connection(('${addr}', ${port}), timeout=10); s.sendall(data); s.close()
print(len(data), hashlib.sha256(data).hexdigest())`);
  return [client, await server];
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
      const [sent, received] = await streamSha256(nsA, nsB, '198.18.202.1', 5555, size);
      expect(received).toBe(sent);
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
    } finally {
      await h.cleanup();
    }
  });
});

describe.skipIf(!isRoot)('real TAP with coalesced writes (gro.ts) and offload reads', () => {
  /**
   * A ── TAP a ══ JS ══ TAP b ── B (forwards) ── veth without checksum offload, TSO or GSO ── C.
   * B's kernel segments each super-frame and completes every checksum in software from the seed left
   * in the TCP header, and C verifies them: a wrong seed or a wrong cut stalls the stream (a receiver
   * in B itself would trust a partial checksum without computing it). `wire(a, b)` connects the TAPs.
   */
  async function overTaps(wire: (a: ReturnType<typeof openTunDevice>, b: ReturnType<typeof openTunDevice>) => void, size: number) {
    const tag = randomBytes(3).toString('hex');
    const [nsA, nsB, nsC] = [`rvga${tag}`, `rvgb${tag}`, `rvgc${tag}`];
    for (const ns of [nsA, nsB, nsC]) ip('netns', 'add', ns);
    const devs: ReturnType<typeof openTunDevice>[] = [];
    try {
      for (const [ns, v4, v6] of [[nsA, '198.18.203.1', 'fd00:203::1'], [nsB, '198.18.203.2', 'fd00:203::2']] as const) {
        const d = openTunDevice({ name: `rvg${ns.slice(3, 4)}${tag}`, mode: 'tap', offload: true });
        devs.push(d);
        ip('link', 'set', d.name, 'netns', ns);
        ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', d.name);
        ip('-n', ns, 'addr', 'add', `${v6}/64`, 'dev', d.name, 'nodad');
        ip('-n', ns, 'link', 'set', d.name, 'up');
      }
      ip('-n', nsB, 'link', 'add', 'vb', 'type', 'veth', 'peer', 'name', 'vc', 'netns', nsC);
      execFileSync('ip', ['netns', 'exec', nsB, 'ethtool', '-K', 'vb', 'tx', 'off', 'tso', 'off', 'gso', 'off'], { stdio: 'ignore' });
      ip('-n', nsB, 'addr', 'add', '198.18.204.1/24', 'dev', 'vb');
      ip('-n', nsB, 'addr', 'add', 'fd00:204::1/64', 'dev', 'vb', 'nodad');
      ip('-n', nsC, 'addr', 'add', '198.18.204.2/24', 'dev', 'vc');
      ip('-n', nsC, 'addr', 'add', 'fd00:204::2/64', 'dev', 'vc', 'nodad');
      for (const [ns, dev] of [[nsB, 'vb'], [nsC, 'vc']] as const) ip('-n', ns, 'link', 'set', dev, 'up');
      execFileSync('ip', ['netns', 'exec', nsB, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
      ip('-n', nsA, 'route', 'add', '198.18.204.0/24', 'via', '198.18.203.2');
      ip('-n', nsA, '-6', 'route', 'add', 'fd00:204::/64', 'via', 'fd00:203::2');
      ip('-n', nsC, 'route', 'add', '198.18.203.0/24', 'via', '198.18.204.1');
      ip('-n', nsC, '-6', 'route', 'add', 'fd00:203::/64', 'via', 'fd00:204::1');
      const [a, b] = devs as [ReturnType<typeof openTunDevice>, ReturnType<typeof openTunDevice>];
      expect(a.gsoWrites).toBe(true);
      wire(a, b);
      for (const [family, addr] of [['AF_INET', '198.18.204.2'], ['AF_INET6', 'fd00:204::2']] as const) {
        const [sent, received] = await streamSha256(nsA, nsC, addr, 5556, size, family);
        expect(received).toBe(sent);
      }
      expect(b.stats().writeDrops).toBe(0);
      expect(a.stats().writeDrops).toBe(0);
      return [a, b] as const;
    } finally {
      for (const d of devs) d.close();
      for (const ns of [nsA, nsB, nsC]) ip('netns', 'del', ns);
    }
  }

  it('carries TCP streams (IPv4 and IPv6) as coalesced super-frames, byte for byte, through a software-checksummed hop', async () => {
    // the "bond": plain frames read on one side, coalesced into the other's writes
    const stats: CoalesceStats = { packets: 0, entries: 0, merged: 0 };
    const size = 16 * 1024 * 1024;
    const [, b] = await overTaps((a, b) => {
      a.start((batch, gso) => {
        expect(gso).toBe(false);
        b.writeBatch(coalesceTcp(unpackBatch(batch), 14, stats), true);
      });
      b.start((batch) => a.writeBatch(coalesceTcp(unpackBatch(batch), 14, stats), true));
    }, size);
    // most data segments joined a super-frame, and the kernel took every write
    expect(stats.merged).toBeGreaterThan((2 * size) / 1448 / 2);
    expect(b.stats().packetsWritten).toBeLessThan((2 * size) / 1448 / 2);
  }, 90_000);

  it('reads super-frames from a TAP with offload on; they cross whole, or cut for a plain peer (splitGso), byte for byte', async () => {
    const size = 16 * 1024 * 1024;
    for (const cut of [false, true]) {
      let entries = 0;
      const [a, b] = await overTaps((a, b) => {
        a.setOffload(true);
        a.start((batch, gso) => {
          expect(gso).toBe(true);
          const all = unpackBatch(batch, true);
          entries += all.length;
          if (!cut) b.writeBatch(batch, true);
          else b.writeBatch(packBatch(all.flatMap((e) => splitGso(e, 14))));
        });
        b.start((batch) => a.writeBatch(coalesceTcp(unpackBatch(batch), 14), true));
      }, size);
      // the sender's kernel handed over 64 KiB super-frames: far fewer reads than 1.4 KiB segments
      expect(a.stats().gsoPacketsRead).toBeGreaterThan(0);
      expect(entries).toBeLessThan((2 * size) / 1448 / 4);
      if (cut) expect(b.stats().packetsWritten).toBeGreaterThan((2 * size) / 1448);
    }
  }, 120_000);
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
