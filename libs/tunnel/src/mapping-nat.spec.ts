import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Cidr, computeNetworkMapping, type MappingMode } from '@rvpn/config';
import { conntrackFlushTargets, flushMappedConntrack, seedMappingChain, shootMappingChain, shootMappingForwardRules } from './mapping-nat.js';
import { NetCommandError, NetToolMissingError } from './errors.js';
import { NetConfig } from './netconfig.js';

const isRoot = process.getuid?.() === 0;
const cidrs = (...l: string[]) => l.map((c) => Cidr.parse(c));
/** Gardener's default ranges on both sides, plus a dual-stack pod network that overlaps a seed node network. */
const gardener = (mode: MappingMode = 'auto') => computeNetworkMapping({
  mode,
  networks: {
    seedPods: cidrs('100.96.0.0/11'), seedServices: cidrs('100.64.0.0/13'), seedNodes: cidrs('10.250.0.0/16', 'fd10:96::/40'),
    shootPods: cidrs('100.96.0.0/11', 'fd10:96::/40'), shootServices: cidrs('100.64.0.0/13'), shootNodes: cidrs('10.250.0.0/16'),
  },
});

describe('nftables rules of the network mapping', () => {
  it('adds nothing when nothing is translated', () => {
    const m = computeNetworkMapping({ mode: 'auto', networks: { seedPods: cidrs('10.1.0.0/24'), shootPods: cidrs('100.96.0.0/11', 'fd10:96::/40') } });
    expect(seedMappingChain('tun0', m)).toEqual([]);
    expect(shootMappingChain('tun0', m)).toEqual([]);
    expect(shootMappingForwardRules('tun0', m)).toEqual([]);
    expect(conntrackFlushTargets(m)).toEqual([]);
  });

  it('the seed maps its pod sources, the shoot maps the mapped destinations back, per family', () => {
    const m = gardener();
    const seed = seedMappingChain('tun0', m).join('\n');
    expect(seed).toContain('oifname "tun0" ip saddr { 100.96.0.0/11 } snat ip prefix to ip saddr map { 100.96.0.0/11 : 241.0.0.0/11 }');
    expect(seed).not.toContain('ip6'); // the seed's IPv6 source is its tunnel address, not a pod network
    const shoot = shootMappingChain('tun0', m).join('\n');
    expect(shoot).toContain('iifname "tun0" ip daddr { 242.0.0.0/16, 243.0.0.0/13, 244.0.0.0/11 } dnat ip prefix to ip daddr map { 242.0.0.0/16 : 10.250.0.0/16, 243.0.0.0/13 : 100.64.0.0/13, 244.0.0.0/11 : 100.96.0.0/11 }');
    expect(shoot).toContain('iifname "tun0" ip6 daddr { fd6d:6170:400::/40 } dnat ip6 prefix to ip6 daddr map { fd6d:6170:400::/40 : fd10:96::/40 }');
    expect(shootMappingForwardRules('bond0', m)).toEqual([
      '  iifname "bond0" meta nfproto ipv4 ct state new ct status ! dnat counter drop comment "mapped family: only mapped shoot destinations"',
      '  iifname "bond0" meta nfproto ipv6 ct state new ct status ! dnat counter drop comment "mapped family: only mapped shoot destinations"',
    ]);
    expect(conntrackFlushTargets(m)).toEqual(['242.0.0.0/8', '243.0.0.0/8', '244.0.0.0/8', 'fd6d:6170:200::/40', 'fd6d:6170:300::/40', 'fd6d:6170:400::/40']);
  });

  it('without conntrack(8) the flush warns once and lets the start go on; other failures still fail it', async () => {
    const warned: string[] = [];
    const log = { info() {}, debug() {}, warn: (_o: object, m?: string) => void warned.push(m ?? '') };
    let calls = 0;
    const missing = { flushConntrack: () => (calls++, Promise.reject(new NetToolMissingError('conntrack is not installed'))) } as unknown as NetConfig;
    await flushMappedConntrack(missing, gardener(), log);
    expect(calls).toBe(1);
    expect(warned).toEqual([expect.stringContaining('conntrack(8) is missing')]);
    const broken = { flushConntrack: () => Promise.reject(new NetCommandError('conntrack -D failed: Operation not permitted')) } as unknown as NetConfig;
    await expect(flushMappedConntrack(broken, gardener(), log)).rejects.toMatchObject({ code: 'RVPN_ERR_NET_COMMAND' });
  });

  it.runIf(isRoot)('the kernel takes both chains, and a conntrack flush that matches nothing is no error', async () => {
    const ns = `rvm${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      const net = new NetConfig({ netns: ns });
      const m = gardener();
      await net.applyNftTable('inet', 'seed', seedMappingChain('tun0', m).join('\n'));
      await net.applyNftTable('inet', 'shoot', shootMappingChain('tun0', m).join('\n'));
      const listed = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']).toString();
      expect(listed).toContain('snat ip prefix to ip saddr map { 100.96.0.0/11 : 241.0.0.0/11 }');
      expect(listed).toContain('dnat ip6 prefix to ip6 daddr map { fd6d:6170:400::/40 : fd10:96::/40 }');
      for (const dst of conntrackFlushTargets(m)) await net.flushConntrack(dst);
      await net.undoAll();
      expect(execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']).toString()).toBe('');
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});
