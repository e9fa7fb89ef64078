/**
 * In a kernel (root, throw-away namespaces): a router advertisement arriving on a hardened bond
 * installs no default route and no address; on a device left as the kernel makes it, it does both.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetConfig } from '@rvpn/tunnel';
import { BOND_DEFAULT_SYSCTLS, bondDeviceSysctls, hardenBondDevice } from './harden.js';

const isRoot = process.getuid?.() === 0;
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

describe('bond hardening tables', () => {
  it('turns off RAs and redirects for new devices and for the bond itself', () => {
    expect(BOND_DEFAULT_SYSCTLS['net.ipv6.conf.default.accept_ra']).toBe('0');
    expect(bondDeviceSysctls('bond0')).toMatchObject({ 'net.ipv6.conf.bond0.accept_ra': '0', 'net.ipv6.conf.bond0.accept_redirects': '0', 'net.ipv4.conf.bond0.accept_redirects': '0' });
  });
});

describe.skipIf(!isRoot)('router advertisements on a bond (root)', () => {
  const id = process.pid % 100000;
  const E = `rvt${id}e`, R = `rvt${id}r`;
  // an RA from a "shoot port": router lifetime 1800 s and an autoconf prefix 2001:db8:1::/64
  const ra = (ifname: string) => `import socket,struct
s=socket.socket(socket.AF_INET6,socket.SOCK_RAW,socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_HOPS,255)
s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_MULTICAST_IF,socket.if_nametoindex('${ifname}'))
pio=struct.pack('!BBBBIII16s',3,4,64,0xc0,86400,14400,0,socket.inet_pton(socket.AF_INET6,'2001:db8:1::'))
m=struct.pack('!BBHBBHII',134,0,0,64,0,1800,0,0)+pio
for i in range(3): s.sendto(m,('ff02::1',0,0,socket.if_nametoindex('${ifname}')))`;
  beforeAll(() => {
    for (const n of [E, R]) sh(`ip netns del ${n} 2>/dev/null || true; ip netns add ${n}`);
    // the sender's link-local address must be usable at once (no duplicate address detection)
    sh(`ip netns exec ${R} sh -c 'sysctl -qw net.ipv6.conf.all.accept_dad=0; sysctl -qw net.ipv6.conf.default.accept_dad=0'`);
    sh(`ip -n ${E} link add bond0 type veth peer name peer netns ${R} && ip -n ${E} link add plain0 type veth peer name peer2 netns ${R}`);
  });
  afterAll(() => {
    for (const n of [E, R]) sh(`ip netns del ${n} 2>/dev/null || true`);
  });

  /** Waits until `dev` in R has a usable link-local address (the RA's source). */
  const senderReady = async (dev: string) => {
    const t0 = Date.now();
    while (!/inet6 fe80::\S+ scope link\s*\n/.test(sh(`ip -n ${R} -6 addr show dev ${dev}`)) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
  };
  const routes = () => sh(`ip -n ${E} -6 route show default; ip -n ${E} -6 addr show scope global`);

  it('ignores RAs on a hardened bond', async () => {
    const net = new NetConfig({ netns: E });
    for (const [k, v] of Object.entries(BOND_DEFAULT_SYSCTLS)) await net.setSysctl(k, v);
    await hardenBondDevice(net, 'bond0');
    sh(`ip -n ${E} link set bond0 up && ip -n ${R} link set peer up`);
    await senderReady('peer');
    sh(`ip netns exec ${R} python3 -c "${ra('peer')}"`);
    await new Promise((r) => setTimeout(r, 500));
    expect(routes()).not.toMatch(/default|2001:db8:1:/);
  });

  it('(control) a device left as the kernel made it takes the same RA: a default route and an address', async () => {
    sh(`ip -n ${E} link set plain0 up && ip -n ${R} link set peer2 up`);
    await senderReady('peer2');
    sh(`ip netns exec ${R} python3 -c "${ra('peer2')}"`);
    const t0 = Date.now();
    while (!/default/.test(routes()) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 100));
    expect(routes()).toMatch(/default via fe80::\S+ dev plain0/);
    expect(routes()).toMatch(/2001:db8:1:/);
  });
});
