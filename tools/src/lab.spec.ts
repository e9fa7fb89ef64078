import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deterministicSha256, deterministicStream } from './fixtures/pattern.js';
import { ADDR, OVERLAP_ADDR, Topology, newPrefix, nodeFirewall, seedRouterFirewall } from './lab/topology.js';
import { inNs } from './lab/sh.js';

describe('lab topology (no root needed)', () => {
  it('names namespaces <prefix>-<role> and refuses prefixes the sweeper would not recognise', () => {
    const p = newPrefix();
    expect(p).toMatch(/^rv[0-9a-f]{4}$/);
    expect(new Topology(p).ns.vsh).toBe(`${p}-vsh`);
    expect(() => new Topology('lab1')).toThrow(/must match/);
  });

  it("a two-shoot lab creates both shoots' namespaces; the second shoot's view names its own by the first shoot's roles", () => {
    const p = newPrefix();
    const lab = new Topology(p, { overlap: true, twoShoots: true });
    expect(lab.namespaces).toEqual(expect.arrayContaining([`${p}-srv`, `${p}-vsh`, `${p}-srvb`, `${p}-kapib`, `${p}-nodeb`, `${p}-vshb`, `${p}-podb`]));
    const second = lab.second!;
    expect(second.owner).toBe(lab);
    expect(second.namespaces).toEqual([]); // it creates nothing of its own
    expect([second.ns.srv, second.ns.kapi, second.ns.node, second.ns.vsh, second.ns.pod]).toEqual([`${p}-srvb`, `${p}-kapib`, `${p}-nodeb`, `${p}-vshb`, `${p}-podb`]);
    expect([second.ns.seed, second.ns.lb]).toEqual([lab.ns.seed, lab.ns.lb]);
    expect([second.seed.srv, second.seed.kapi, second.nodeWan]).toEqual([OVERLAP_ADDR.second.seed.srv, OVERLAP_ADDR.second.seed.kapi, OVERLAP_ADDR.second.nodeWan]);
    expect(second.seed.srv).not.toBe(lab.seed.srv);
    expect(second.nodeWan).not.toBe(lab.nodeWan);
    // its work directory must lie inside the lab's, which the sweeper removes whole
    lab.trackWorkDir(`/tmp/${p}-x`);
    expect(() => second.trackWorkDir(`/tmp/${p}-y`)).toThrow(/inside the lab's/);
    expect(() => second.trackWorkDir(`/tmp/${p}-x/second-shoot`)).not.toThrow();
    expect(() => new Topology(p, { twoShoots: true })).toThrow(/overlapping non-HA/);
    expect(() => new Topology(p, { overlap: true, ha: true, twoShoots: true })).toThrow(/overlapping non-HA/);
  });

  it('the shoot node lets nothing in from the wan, except the LoadBalancer port in the classic direction', () => {
    const reversed = nodeFirewall(false);
    expect(reversed).toContain(`ip daddr ${ADDR.service} tcp dport ${ADDR.servicePort} dnat to ${ADDR.pod}:${ADDR.podPort}`);
    expect(reversed).toMatch(/iifname "wan0" counter drop/);
    expect(reversed).not.toContain('4314');
    expect(nodeFirewall(true)).toContain(`dnat to ${ADDR.vsh}:4314`);
    expect(seedRouterFirewall(false)).not.toContain('masquerade');
    expect(seedRouterFirewall(true)).toContain('oifname "brw" masquerade');
  });

  it('inNs prefixes ip netns exec only when a namespace is given', () => {
    expect(inNs(undefined, ['true'])).toEqual(['true']);
    expect(inNs('rv0000-pod', ['true'])).toEqual(['ip', 'netns', 'exec', 'rv0000-pod', 'true']);
  });
});

describe('deterministic payload', () => {
  it('the digest the fixture reports equals the digest of the bytes it sends (also for odd sizes)', async () => {
    for (const n of [0, 1, 65_536, 200_001]) {
      const h = createHash('sha256');
      for await (const c of deterministicStream(n)) h.update(c as Buffer);
      expect(h.digest('hex')).toBe(deterministicSha256(n));
    }
    expect(deterministicSha256(10)).not.toBe(deterministicSha256(11));
  });
});
