/** The reachability checks `pnpm demo --check` runs (and the e2e tests reuse). */
import { ADDR, OVERLAP_ADDR } from './lab/topology.js';
import { API_SNI, URLS, type Stack } from './lab/stack.js';
import { run } from './lab/sh.js';

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

export const CHECKS: Check[] = [
  { name: `pod ${ADDR.pod}:${ADDR.podPort} through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.pod), 'hello from pod') },
  { name: `pod [${ADDR.podV6}]:${ADDR.podPort} (IPv6 payload) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.podV6), 'hello from pod6') },
  { name: `service ${ADDR.service}:${ADDR.servicePort} (DNAT to the pod) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.service), 'hello from pod') },
  { name: `node ${ADDR.nodeIp}:${ADDR.kubeletPort} (kubelet HTTPS) through the CONNECT proxy`, fn: async (s) => expectBody(await s.curlViaProxy(URLS.kubelet), 'kubelet: logs of') },
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
      const r = await run(['curl', '-sk', '-m', '2', `https://${ADDR.nodeWan}:${ADDR.kubeletPort}/`], { ns: s.topo.ns.lb, allowFail: true });
      if (r.code === 0) throw new Error('the shoot node answered a connection from the seed');
      const direct = await run(['curl', '-s', '-m', '2', URLS.pod], { ns: s.topo.ns.kapi, allowFail: true });
      if (direct.code === 0) throw new Error('the pod was reachable without the proxy');
      return `direct connections fail (curl exit ${r.code} / ${direct.code})`;
    },
  },
  {
    name: `kube-apiserver through sni-proxy :443 by SNI (${API_SNI}) from the shoot`,
    fn: async (s) => {
      if (s.direction !== 'reversed') return 'skipped (classic direction has no sni-proxy)';
      const r = await run(['curl', '-sS', '-m', '5', '--cacert', s.file('lab-ca.crt'), '--resolve', `${API_SNI}:443:${ADDR.lbWan}`, `https://${API_SNI}/`], { ns: s.topo.ns.vsh, allowFail: true });
      return expectBody(r, 'hello from apiserver');
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

export async function runChecks(stack: Stack, onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const c of stack.topo.overlap ? [...CHECKS, ...OVERLAP_CHECKS] : CHECKS) {
    let r: CheckResult;
    try {
      r = { name: c.name, ok: true, detail: await c.fn(stack) };
    } catch (err) {
      r = { name: c.name, ok: false, detail: (err as Error).message };
    }
    results.push(r);
    onResult?.(r);
  }
  return results;
}

/** The checks of `pnpm demo --ha --check`: both kube-apiserver pods reach the shoot through their path-controllers. */
export async function runHaChecks(s: import('./lab/ha-stack.js').HaStack, onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
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
