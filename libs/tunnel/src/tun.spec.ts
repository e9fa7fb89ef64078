/**
 * The real TUN device, as root: opened in the root namespace, moved into a namespace created for the
 * test (the fd stays valid), addressed there; the namespace's own kernel answers our echo requests.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeDeviceCompliance } from './testing/device-compliance.js';
import { openTunDevice } from './tun.js';

const isRoot = process.getuid?.() === 0;
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

async function tunInNamespace(mode: 'tun' | 'tap' = 'tun', maxBatchPackets = 32) {
  const tag = randomBytes(3).toString('hex');
  const ns = `rvt${tag}`;
  ip('netns', 'add', ns);
  try {
    const device = openTunDevice({ name: `rvt${tag}`, mode, maxBatchPackets });
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
