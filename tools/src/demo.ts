#!/usr/bin/env node
/**
 * `pnpm demo`: brings the whole reversed VPN up on a local topology of network namespaces, shows
 * its live status and commands to try, and tears everything down on Ctrl-C.
 * `pnpm demo --check`: the same, non-interactive; proves pod, service and node reachability through
 * the CONNECT proxy, prints PASS/FAIL lines and exits 0 (all passed) or 1.
 * Options: --overlap (the seed's networks are the shoot's: Gardener's default ranges on both, so the
 * tunnel carries mapped addresses, issue 12; processes; reversed, --classic or --ha), --two-shoots (with --overlap: a
 * second shoot of the same seed on exactly the first one's ranges, through the same sni-proxy; the checks
 * prove each shoot's answers and their isolation), --classic (the seed dials the shoot), --port 8443 (X-Gardener-Destination header),
 * --images (every app as a container from its image, run as the Kubernetes manifests say; `pnpm images`
 * builds them).
 * Ctrl-C (or SIGTERM, SIGHUP) tears everything down and exits 0: the root package.json `exec`s this script, so
 * no shell between pnpm and it dies of the SIGINT first (pnpm then reported "Command failed").
 */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, REPO_ROOT, URLS } from './lab/stack.js';
import { ADDR, OVERLAP_ADDR } from './lab/topology.js';
import { missingTools } from './lab/sh.js';
import { runChecks, runHaChecks } from './checks.js';
import { HaStack, HA_APPS } from './lab/ha-stack.js';
import { PREFIX_LABEL } from './lab/container-sweep.js';
import { CONTAINERS_CONF, podmanAvailable } from './images/podman.js';
import { missingImages } from './lab/containers.js';

const { values } = parseArgs({
  options: {
    check: { type: 'boolean', default: false },
    classic: { type: 'boolean', default: false },
    port: { type: 'string' },
    ha: { type: 'boolean', default: false },
    images: { type: 'boolean', default: false },
    overlap: { type: 'boolean', default: false },
    'two-shoots': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`usage: pnpm demo [--check] [--classic] [--port 8132|8443] [--ha] [--images] [--overlap [--two-shoots]]
  --check        run the checks, tear down, exit 0 (all passed) or 1
  --classic      the seed dials the shoot (vpn2's classic direction)
  --port 8443    vpn-shoot dials with X-Gardener-Destination instead of Reversed-VPN on 8132
  --ha           two seed servers, two shoot pods, two kube-apiservers with path-controllers
  --images       every app as a container from its image (pnpm images builds them)
  --overlap      the seed on the shoot's ranges (Gardener's defaults on both): the tunnel carries mapped addresses
  --two-shoots   with --overlap: a second shoot of the same seed on exactly the first one's ranges, through
                 the same sni-proxy; the checks prove each shoot answers for itself and the shoots stay apart`);
  process.exit(0);
}

async function preflight(): Promise<string[]> {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('must run as root (it creates network namespaces, TUN devices and firewall tables)');
  const missing = await missingTools(['ip', 'nft', 'curl']);
  if (missing.length) problems.push(`missing tools: ${missing.join(', ')} (run: bash tools/setup.sh)`);
  if (!existsSync('/dev/net/tun')) problems.push('/dev/net/tun is missing (no TUN support)');
  if (values.images) {
    const engine = await podmanAvailable();
    if (!engine.ok) problems.push(engine.why);
    else {
      const missing = await missingImages({ ha: values.ha, direction: values.classic ? 'classic' : 'reversed' });
      if (missing.length) problems.push(`image(s) missing: ${missing.join(', ')} (run: pnpm images)`);
    }
  } else {
    for (const app of ['sni-proxy', 'vpn-seed-server', 'vpn-shoot', ...(values.ha ? ['path-controller'] : [])]) {
      if (!existsSync(join(REPO_ROOT, 'apps', app, 'dist', 'main.js'))) problems.push(`apps/${app} is not built (run: pnpm build)`);
    }
  }
  if (values.port !== undefined && values.port !== '8132' && values.port !== '8443') problems.push('--port must be 8132 or 8443');
  if (values.ha && values.classic) problems.push('--ha and --classic do not combine (HA is reversed only)');
  if (values['two-shoots'] && values.classic) problems.push('--two-shoots runs the reversed tunnel (both shoots dial out through one sni-proxy), not --classic');
  if (values.overlap && values.images) problems.push('--overlap runs processes: the container lab does not pass the seed networks to its pods yet');
  if (values['two-shoots'] && (!values.overlap || values.ha)) problems.push('--two-shoots needs --overlap and no --ha: the two shoots overlap the seed and each other, each with one seed server');
  return problems;
}

/**
 * The demo's one teardown: run once, on Ctrl-C/SIGTERM or when the demo ends; `stopping()` tells a
 * status loop that it has begun (and lets it wait for it to finish before the process exits).
 */
function teardownOnce(message: string, down: () => Promise<void>) {
  let running: Promise<void> | undefined;
  const teardown = () =>
    (running ??= (async () => {
      console.log(`\n${message}`);
      await down();
      console.log('clean.');
    })());
  // SIGHUP: the terminal went away (a closed ssh session); nothing may stay behind then either, and
  // the teardown's own output to the dead terminal (EIO) must not end it half-way
  for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => void teardown().then(() => process.exit(0), (err: Error) => {
      console.error(`teardown failed: ${err.message} (pnpm sweep removes what is left)`);
      process.exit(1);
    }));
  }
  return { teardown, stopping: () => running };
}

async function main(): Promise<number> {
  const problems = await preflight();
  if (problems.length) {
    for (const p of problems) console.error(`demo: ${p}`);
    return 2;
  }
  if (values.ha) return mainHa();
  const stack = new Stack({
    direction: values.classic ? 'classic' : 'reversed',
    // unset: processes dial 8132 (vpn2's default), containers what the manifests say (8443)
    ...(values.port ? { connectPort: values.port === '8443' ? (8443 as const) : (8132 as const) } : {}),
    images: values.images,
    overlap: values.overlap,
    twoShoots: values['two-shoots'],
    log: (l) => console.log(`  … ${l}`),
  });
  const { teardown, stopping } = teardownOnce('tearing down (apps remove their devices, routes and firewall tables; namespaces are deleted)', () => stack.down());
  try {
    const t0 = Date.now();
    await stack.start();
    console.log(`up in ${Date.now() - t0} ms: the tunnel was dialed ${stack.direction === 'reversed' ? 'by vpn-shoot, out through sni-proxy' : 'by the seed server (classic direction)'}`);
    if (values.overlap) {
      const m = OVERLAP_ADDR.mapped;
      console.log(`overlap: the seed's pods, services and nodes use the shoot's ranges; the tunnel carries mapped addresses (seed server ${stack.topo.seed.srv} as ${m.srv}; pod ${ADDR.pod} as ${m.pod}, service ${ADDR.service} as ${m.service}, node ${ADDR.nodeIp} as ${m.nodeIp}, pod ${ADDR.podV6} as ${m.podV6}); the apiserver still names the real ones`);
    }
    if (stack.second) {
      const [a, b] = [stack, stack.second];
      console.log(`two shoots: ${a.shoot.namespace} (seed server ${a.topo.seed.srv}, kube-apiserver ${a.topo.seed.kapi}) and ${b.shoot.namespace} (${b.topo.seed.srv}, ${b.topo.seed.kapi}) have the same pod, service and node addresses and the same mapped ones, through one sni-proxy; the fixtures answer with their shoot's name`);
    }
    console.log('\nchecks:');
    const results = await runChecks(stack, (r) => console.log(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name}  — ${r.detail}`));
    const failed = results.filter((r) => !r.ok).length;
    console.log(`\n${results.length - failed} passed, ${failed} failed`);
    if (values.check) {
      if (failed) console.log(`logs kept in ${stack.dir}`);
      await teardownKeeping(stack, failed > 0);
      return failed ? 1 : 0;
    }
    printTryThis(stack);
    for (const s of [stack, ...(stack.second ? [stack.second] : [])]) s.supervise = true;
    for (;;) {
      const parts: string[] = [];
      for (const s of stack.second ? [stack, stack.second] : [stack]) {
        const [seed, shoot] = await Promise.all([s.status('vpn-seed-server', 'readyz'), s.status('vpn-shoot', 'readyz')]);
        const m = await s.statusBody('vpn-seed-server', 'metrics');
        const rtt = /^rvpn_seed_server_tunnel_rtt_seconds (\S+)/m.exec(m)?.[1];
        parts.push(`${stack.second ? `${s.shoot.namespace}: ` : ''}vpn-seed-server ${seed === 200 ? 'READY' : `not ready (${seed})`} · vpn-shoot ${shoot === 200 ? 'CONNECTED' : `not connected (${shoot})`}${rtt ? ` · rtt ${(Number(rtt) * 1000).toFixed(2)} ms` : ''}`);
      }
      process.stdout.write(`\r[${new Date().toISOString().slice(11, 19)}] ${parts.join(' | ')} · Ctrl-C to stop   `);
      await new Promise((r) => setTimeout(r, 2000));
      const ending = stopping();
      if (ending) {
        await ending;
        return 0;
      }
    }
  } catch (err) {
    const ending = stopping();
    if (ending) {
      await ending; // Ctrl-C during the start: torn down, not failed
      return 0;
    }
    console.error(`demo failed: ${(err as Error).message}`);
    stack.keepWorkDir = true;
    await teardown();
    return 1;
  }

  async function teardownKeeping(s: Stack, keep: boolean) {
    if (keep) s.keepWorkDir = true;
    await teardown();
  }
}

function printTryThis(s: Stack) {
  const kapi = `ip netns exec ${s.topo.ns.kapi}`;
  const proxy = s.proxyArgs().join(' ');
  console.log(`
try (as root, in another terminal):
  # the "kube-apiserver" reaches a shoot pod, a service and a kubelet through the egress proxy
  ${kapi} curl ${proxy} ${URLS.pod}
  ${kapi} curl ${proxy} ${URLS.service}
  ${kapi} curl --cacert ${s.file('lab-ca.crt')} ${proxy} ${URLS.kubelet}
  # a 100 MB download through the tunnel, checksum compared with the pod's
  ${kapi} curl -s ${proxy} 'http://${ADDR.pod}:${ADDR.podPort}/bytes?n=100000000' | sha256sum; ${kapi} curl -s ${proxy} 'http://${ADDR.pod}:${ADDR.podPort}/sha256?n=100000000'
  # status and metrics of the seed server
  ip netns exec ${s.topo.ns.srv} curl -s localhost:15000/readyz; ip netns exec ${s.topo.ns.srv} curl -s localhost:15000/metrics | grep ^rvpn_
  # the shoot reaches its kube-apiserver through sni-proxy by SNI
  ip netns exec ${s.topo.ns.vsh} curl --cacert ${s.file('lab-ca.crt')} --resolve ${s.shoot.apiSni}:443:${ADDR.lbWan} https://${s.shoot.apiSni}/
  # kill the shoot client: the demo restarts it (as the kubelet would) and the status line recovers
  ip netns pids ${s.topo.ns.vsh} | xargs kill -9
${s.second ? secondShootHints(s.second) : ''}${s.pods ? containerHints(s.topo.prefix) : ''}logs: ${s.dir}/*.log
`);
}

/** What to try on the second shoot of a two-shoot lab (`--two-shoots`). */
function secondShootHints(b: Stack): string {
  return `  # the second shoot (${b.shoot.namespace}): the same addresses, its own kube-apiserver and seed server; the answer names the shoot
  ip netns exec ${b.topo.ns.kapi} curl ${b.proxyArgs().join(' ')} ${URLS.pod}
  ip netns exec ${b.topo.ns.vsh} curl --cacert ${b.file('lab-ca.crt')} --resolve ${b.shoot.apiSni}:443:${ADDR.lbWan} https://${b.shoot.apiSni}/
  # logs: ${b.dir}/*.log
`;
}

/** What to try on the containers of a lab run (`--images`). */
function containerHints(prefix: string): string {
  return `  # the apps are containers (podman with the project's settings): list them, read one's log, look inside
  export CONTAINERS_CONF=${CONTAINERS_CONF}
  podman ps --filter label=${PREFIX_LABEL}=${prefix}
  podman logs ${prefix}-vpn-shoot; podman inspect --format '{{.HostConfig.CapAdd}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}' ${prefix}-vpn-shoot
`;
}

/** `pnpm demo --ha`: two seed servers, two shoot pods, two kube-apiservers with path-controllers. */
async function mainHa(): Promise<number> {
  const s = new HaStack({ images: values.images, overlap: values.overlap, log: (l) => console.log(`  … ${l}`) });
  const { teardown, stopping } = teardownOnce('tearing down', () => s.down());
  try {
    const t0 = Date.now();
    await s.start();
    console.log(`HA up in ${Date.now() - t0} ms`);
    if (values.overlap) {
      const m = OVERLAP_ADDR.mapped;
      console.log(`overlap: the seed's pods, services and nodes use the shoot's ranges (kube-apiservers ${s.topo.haAddr.kapi.join(', ')}); the bonds carry mapped shoot addresses (pod ${ADDR.pod} as ${m.pod}, service ${ADDR.service} as ${m.service}, node ${ADDR.nodeIp} as ${m.nodeIp}, pod ${ADDR.podV6} as ${m.podV6}) from the path-controllers' bond addresses; the apiservers still name the real ones`);
    }
    console.log('\nchecks:');
    const results = await runHaChecks(s, (r) => console.log(`${r.ok ? 'PASS' : 'FAIL'}  ${r.name}  — ${r.detail}`));
    const failed = results.filter((r) => !r.ok).length;
    console.log(`\n${results.length - failed} passed, ${failed} failed`);
    if (values.check) {
      if (failed) s.keepWorkDir = true;
      await teardown();
      return failed ? 1 : 0;
    }
    const proxy = s.proxyArgs().join(' ');
    console.log(`
try (as root, in another terminal):
  ip netns exec ${s.topo.ns.kapi0} curl ${proxy} ${URLS.pod}
  # kill a seed server, freeze a shoot pod, and watch the status line (and the stream below) carry on
  ip netns exec ${s.topo.ns.kapi0} curl -N ${proxy} 'http://${ADDR.pod}:${ADDR.podPort}/stream?ms=200'
  ip netns pids ${s.topo.ns.srv0} | xargs kill -9
  ip netns exec ${s.topo.ns.vsh0} nft 'add table inet freeze; add chain inet freeze f { type filter hook forward priority -300; policy drop; }'
${s.pods ? containerHints(s.topo.prefix) : ''}logs: ${s.dir}/*.log
`);
    for (;;) {
      const parts: string[] = [];
      for (const app of HA_APPS) parts.push(`${app.replace('vpn-seed-server', 'srv').replace('vpn-shoot', 'shoot').replace('path-controller', 'pc')} ${(await s.status(app, 'readyz')) === 200 ? 'ok' : 'DOWN'}`);
      const m = await s.statusBody('path-controller-0', 'metrics');
      const path = /^rvpn_path_controller_active_path (\S+)/m.exec(m)?.[1];
      process.stdout.write(`\r[${new Date().toISOString().slice(11, 19)}] ${parts.join(' · ')} · pc-0 via shoot pod ${path ?? '?'} · Ctrl-C to stop   `);
      await new Promise((r) => setTimeout(r, 2000));
      const ending = stopping();
      if (ending) {
        await ending;
        return 0;
      }
    }
  } catch (err) {
    const ending = stopping();
    if (ending) {
      await ending;
      return 0;
    }
    console.error(`demo failed: ${(err as Error).message}`);
    await teardown();
    return 1;
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(err);
  process.exit(1);
});
