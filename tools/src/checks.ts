/** The reachability checks `pnpm demo --check` runs (and the e2e tests reuse). */
import { ADDR, OVERLAP_ADDR } from './lab/topology.js';
import { URLS, type Stack } from './lab/stack.js';
import { run } from './lab/sh.js';
import { metric } from './lab/metrics.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

type Check = { name: string; fn: (s: Stack) => Promise<string> };

function expectBody(r: { code: number; stdout: string; stderr: string }, want: string): string {
  if (r.code !== 0) throw new Error(`curl exit ${r.code}: ${r.stderr.trim()}`);
  if (!r.stdout.includes(want)) throw new Error(`unexpected answer ${JSON.stringify(r.stdout.slice(0, 120))}`);
  return r.stdout.trim().split('\n')[0]!;
}

// the fixtures' answers name their shoot in a two-shoot lab (Stack.answerName): a check then also
// proves that the answer came from this stack's shoot and not from the other one
const hello = (s: Stack, fixture: 'pod' | 'pod6' | 'apiserver') => `hello from ${s.answerName(fixture)}\n`;

export const CHECKS: Check[] = [
  { name: `pod ${ADDR.pod}:${ADDR.podPort} through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.pod), hello(s, 'pod')) },
  { name: `pod [${ADDR.podV6}]:${ADDR.podPort} (IPv6 payload) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.podV6), hello(s, 'pod6')) },
  { name: `service ${ADDR.service}:${ADDR.servicePort} (DNAT to the pod) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.service), hello(s, 'pod')) },
  { name: `node ${ADDR.nodeIp}:${ADDR.kubeletPort} (kubelet HTTPS) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.kubelet), `${s.answerName('kubelet')}: logs of`) },
  {
    name: 'the proxy refuses a destination outside the shoot networks (403)',
    fn: async (s) => {
      const r = await s.curlViaProxy(`http://${s.forbiddenTarget}/`, ['-o', '/dev/null', '-w', '%{http_connect}'], 5);
      if (!r.stdout.includes('403')) throw new Error(`expected CONNECT 403, got ${JSON.stringify(r.stdout)} ${r.stderr.trim()}`);
      return 'CONNECT 403';
    },
  },
  {
    name: 'the seed cannot open a connection into the shoot without the tunnel',
    fn: async (s) => {
      // the load balancer has a leg in the wan: even with a route, the shoot node lets nothing in
      const r = await run(['curl', '-sk', '-m', '2', `https://${s.topo.nodeWan}:${ADDR.kubeletPort}/`], { ns: s.topo.ns.lb, allowFail: true });
      if (r.code === 0) throw new Error('the shoot node answered a connection from the seed');
      const direct = await run(['curl', '-s', '-m', '2', URLS.pod], { ns: s.topo.ns.kapi, allowFail: true });
      if (direct.code === 0) throw new Error('the pod was reachable without the proxy');
      return `direct connections fail (curl exit ${r.code} / ${direct.code})`;
    },
  },
  {
    name: 'its kube-apiserver through sni-proxy :443 by SNI from the shoot',
    fn: async (s) => {
      if (s.direction !== 'reversed') return 'skipped (classic direction has no sni-proxy)';
      const sni = s.shoot.apiSni;
      const r = await run(['curl', '-sS', '-m', '5', '--cacert', s.file('lab-ca.crt'), '--resolve', `${sni}:443:${ADDR.lbWan}`, `https://${sni}/`], { ns: s.topo.ns.vsh, allowFail: true });
      return `${sni}: ${expectBody(r, hello(s, 'apiserver'))}`;
    },
  },
];

/**
 * The overlapping lab's extra check (`pnpm demo --overlap --check`): the seed server routes the shoot's
 * mapped ranges into its TUN and none of the real ones, which are the seed's own networks there.
 */
export const OVERLAP_CHECKS: Check[] = [
  {
    name: 'the seed routes the mapped shoot ranges into its TUN, never the real ones (the seed\'s own)',
    fn: async (s) => {
      const m = OVERLAP_ADDR.mapped;
      const via = async (addr: string) => (await run(['ip', 'route', 'get', addr], { ns: s.topo.ns.srv, allowFail: true })).stdout;
      for (const real of [ADDR.pod, ADDR.service, ADDR.nodeIp, ADDR.podV6]) {
        if (/ dev tun0 /.test(await via(real))) throw new Error(`the real shoot address ${real} is routed into the TUN`);
      }
      for (const mapped of [m.pod, m.service, m.nodeIp, m.podV6]) {
        if (!/ dev tun0 /.test(await via(mapped))) throw new Error(`the mapped address ${mapped} is not routed into the TUN`);
      }
      return `into tun0: ${m.pod}, ${m.service}, ${m.nodeIp}, ${m.podV6}; not: ${ADDR.pod}, ${ADDR.service}, ${ADDR.nodeIp}, ${ADDR.podV6}`;
    },
  },
];

/**
 * The two-shoot lab's checks (`pnpm demo --overlap --two-shoots --check`), after each shoot's own: the
 * shoots share one seed, one sni-proxy and every address, and still cannot reach each other. `s` is
 * the first shoot's stack, `s.second` the other's. The spoofing check restarts the first vpn-shoot.
 */
export const TWO_SHOOT_CHECKS: Check[] = [
  {
    name: "each kube-apiserver is refused by the other shoot's egress proxy (its client certificate is of another shoot's CA)",
    fn: async (s) => {
      const details: string[] = [];
      for (const [from, to] of [[s, s.second!], [s.second!, s]] as const) {
        // trusting the other proxy's CA, so that only the client certificate is in question
        const r = await run(['curl', '-sS', '-m', '5', '--proxy', `https://${to.topo.seed.srv}:9443`, '--proxy-cacert', to.file('ca.crt'),
          '--proxy-cert', from.file('proxy-client.crt'), '--proxy-key', from.file('proxy-client.key'), '--proxytunnel', URLS.pod], { ns: from.topo.ns.kapi, allowFail: true });
        if (r.code === 0 || r.stdout.includes('hello from')) throw new Error(`${from.shoot.namespace}'s kube-apiserver reached ${to.shoot.namespace}: ${JSON.stringify(r.stdout.slice(0, 120))}`);
        details.push(`${from.shoot.namespace} → ${to.topo.seed.srv}:9443: curl exit ${r.code}`);
      }
      return details.join('; ');
    },
  },
  {
    name: "a source forged in the first shoot's tunnel (the second shoot's kube-apiserver address) is dropped by its seed server only",
    fn: async (s) => {
      const b = s.second!;
      const vsh = s.topo.ns.vsh;
      const forged = b.topo.seed.kapi; // a real address: the seed's own pod network, never a mapped one
      const spoofed = async (x: Stack) => metric(await x.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_dropped_packets_total', { reason: 'spoofed_source' });
      const [beforeA, beforeB] = [await spoofed(s), await spoofed(b)];
      // without vpn-shoot's firewall (and its mapping) the forged source enters the tunnel unchanged
      await run(['nft', 'delete', 'table', 'inet', 'rvpn_shoot'], { ns: vsh });
      await run(['ip', 'addr', 'add', `${forged}/32`, 'dev', 'lo'], { ns: vsh });
      let answered: boolean;
      try {
        answered = (await run(['curl', '-s', '-m', '2', '--interface', forged, `http://${OVERLAP_ADDR.mapped.srv}:15000/healthz`], { ns: vsh, allowFail: true })).code === 0;
      } finally {
        await run(['ip', 'addr', 'del', `${forged}/32`, 'dev', 'lo'], { ns: vsh, allowFail: true });
        // a restart re-installs the shoot's firewall and mapping
        await s.stopApp('vpn-shoot');
        await s.startApp('vpn-shoot');
        await s.waitReady('vpn-seed-server');
      }
      const [afterA, afterB] = [await spoofed(s), await spoofed(b)];
      if (answered) throw new Error(`the forged source ${forged} got an answer from the seed server`);
      if (afterA <= beforeA) throw new Error(`${s.shoot.namespace}'s seed server counted no spoofed packet (${beforeA} → ${afterA})`);
      if (afterB !== beforeB) throw new Error(`${b.shoot.namespace}'s seed server counted spoofed packets too (${beforeB} → ${afterB})`);
      expectBody(await s.curlViaProxy(URLS.pod), hello(s, 'pod'));
      expectBody(await b.curlViaProxy(URLS.pod), hello(b, 'pod'));
      return `spoofed_source ${beforeA} → ${afterA} in ${s.shoot.namespace}, ${afterB} in ${b.shoot.namespace}; both shoots answer again`;
    },
  },
];

/** Runs checks one after the other, each failure a result (not a throw), reporting each as it ends. */
async function runEach(checks: Array<[string, () => Promise<string>]>, onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const [name, fn] of checks) {
    let r: CheckResult;
    try {
      r = { name, ok: true, detail: await fn() };
    } catch (err) {
      r = { name, ok: false, detail: (err as Error).message };
    }
    results.push(r);
    onResult?.(r);
  }
  return results;
}

/** The lab's checks: in a two-shoot lab every shoot's (named by its namespace), then TWO_SHOOT_CHECKS. */
export async function runChecks(stack: Stack, onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const own = stack.topo.overlap ? [...CHECKS, ...OVERLAP_CHECKS] : CHECKS;
  const bind = (list: Check[], s: Stack, prefix: string) => list.map((c): [string, () => Promise<string>] => [`${prefix}${c.name}`, () => c.fn(s)]);
  const checks = stack.second
    ? [...bind(own, stack, `[${stack.shoot.namespace}] `), ...bind(own, stack.second, `[${stack.second.shoot.namespace}] `), ...bind(TWO_SHOOT_CHECKS, stack, '[both shoots] ')]
    : bind(own, stack, '');
  return runEach(checks, onResult);
}

/** The checks of `pnpm demo --ha --check`: both kube-apiserver pods reach the shoot through their path-controllers. */
export async function runHaChecks(s: import('./lab/ha-stack.js').HaStack, onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const checks: Array<[string, () => Promise<string>]> = [];
  for (const i of [0, 1] as const) {
    checks.push([`kube-apiserver-${i}: pod ${ADDR.pod}:${ADDR.podPort} via path-controller-${i} and the bond`, async () => expectBody(await s.curlViaProxy(i, URLS.pod), 'hello from pod')]);
    checks.push([`kube-apiserver-${i}: pod [${ADDR.podV6}]:${ADDR.podPort} (IPv6 payload)`, async () => expectBody(await s.curlViaProxy(i, URLS.podV6), 'hello from pod6')]);
    checks.push([`kube-apiserver-${i}: service ${ADDR.service}:${ADDR.servicePort} (DNAT in the node)`, async () => expectBody(await s.curlViaProxy(i, URLS.service), 'hello from pod')]);
    checks.push([`kube-apiserver-${i}: node ${ADDR.nodeIp}:${ADDR.kubeletPort} (kubelet HTTPS)`, async () => expectBody(await s.curlViaProxy(i, URLS.kubelet), 'kubelet: logs of')]);
  }
  // overlapping: the seed's own pods are in the shoot's pod network (they mean the shoot there), so the
  // refused destination is the load balancer's wan address, as in the non-HA overlapping lab
  const forbidden = s.topo.overlap ? `${ADDR.lbWan}:8132` : `${s.topo.haAddr.srv[0]}:15000`;
  checks.push([`the path-controllers refuse destinations outside the shoot networks (${forbidden}: 403)`, async () => {
    const r = await s.curlViaProxy(0, `http://${forbidden}/`, ['-o', '/dev/null', '-w', '%{http_connect}'], 5);
    if (!r.stdout.includes('403')) throw new Error(`expected CONNECT 403, got ${JSON.stringify(r.stdout)}`);
    return 'CONNECT 403';
  }]);
  if (s.topo.overlap) {
    checks.push(["kube-apiserver pods route the mapped shoot ranges via the bond, never the real ones (the seed's own)", async () => {
      const m = OVERLAP_ADDR.mapped;
      for (const i of [0, 1] as const) {
        const ns = s.topo.ns[i === 0 ? 'kapi0' : 'kapi1'];
        const via = async (addr: string) => (await run(['ip', 'route', 'get', addr], { ns, allowFail: true })).stdout;
        for (const real of [ADDR.pod, ADDR.service, ADDR.nodeIp, ADDR.podV6]) {
          if (/ dev bond0 /.test(await via(real))) throw new Error(`kube-apiserver-${i}: the real shoot address ${real} is routed via the bond`);
        }
        for (const mapped of [m.pod, m.service, m.nodeIp, m.podV6]) {
          if (!/ dev bond0 /.test(await via(mapped))) throw new Error(`kube-apiserver-${i}: the mapped address ${mapped} is not routed via the bond`);
        }
      }
      return `via bond0: ${m.pod}, ${m.service}, ${m.nodeIp}, ${m.podV6}; not: ${ADDR.pod}, ${ADDR.service}, ${ADDR.nodeIp}, ${ADDR.podV6}`;
    }]);
    checks.push([`kube-apiserver-0 still reaches the seed's own pod ${s.topo.haAddr.srv[1]} (in the shoot's pod range) directly`, async () => {
      const r = await run(['ping', '-c', '1', '-W', '2', s.topo.haAddr.srv[1]], { ns: s.topo.ns.kapi0, allowFail: true });
      if (r.code !== 0) throw new Error(`ping failed: ${r.stdout.trim()} ${r.stderr.trim()}`);
      return 'ping answered on the seed network';
    }]);
  }
  return runEach(checks, onResult);
}
