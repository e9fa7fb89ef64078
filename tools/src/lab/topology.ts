/**
 * The local topology: network namespaces, veth pairs and bridges that model a seed and a shoot.
 *
 *   seed network 10.1.0.0/24 (bridge br0 in <p>-seed)          wan 198.18.0.0/24 (bridge brw in <p>-seed)
 *     <p>-lb    10.1.0.10  sni-proxy, + wan0 198.18.0.10 (the seed's load-balancer address)
 *     <p>-srv   10.1.0.20  vpn-seed-server (TUN, CONNECT proxy 9443)
 *     <p>-kapi  10.1.0.30  "kube-apiserver": curl as the egress client, HTTPS fixture on 443
 *   shoot
 *     <p>-node  wan0 198.18.0.20, node IP 10.250.0.10, pod bridge 100.96.1.1/24, kubelet-like HTTPS :10250,
 *               kube-proxy-like DNAT 100.64.0.10:80 -> 100.96.1.10:8080, masquerade out of wan0,
 *               firewall: from the wan only established traffic (nothing can open a connection into the shoot)
 *     <p>-vsh   100.96.0.2 (veth to the node 100.96.0.1)  vpn-shoot
 *     <p>-pod   100.96.1.10  HTTP fixture :8080
 *
 * With `overlap` (issue 12, `pnpm demo --overlap`) the seed side uses Gardener's default ranges too,
 * the same as the shoot's: the seed's pods sit in the shoot's pod network (gateway 100.96.0.1, lb
 * 100.96.0.10, srv 100.96.0.20, kapi 100.96.0.30 beside the shoot pod 100.96.1.10), and the seed's
 * service and node networks equal the shoot's (OVERLAP_ADDR); the shoot's IPv6 pod network is a /40
 * (the size of a mapped IPv6 range) that a seed node network of the same ULA overlaps. With `ha` too
 * (`pnpm demo --overlap --ha`) the HA seed pods move the same way (OVERLAP_ADDR.ha: srv0/1
 * 100.96.0.21/22, kapi0/1 100.96.0.31/32).
 *
 * With `twoShoots` too (`pnpm demo --overlap --two-shoots`) a second shoot of the same seed joins: its
 * own seed pods <p>-srvb 100.96.0.23 and <p>-kapib 100.96.0.33 on the seed bridge, and its own node
 * <p>-nodeb (wan 198.18.0.21) with <p>-vshb and <p>-podb on exactly the first shoot's ranges and
 * addresses (OVERLAP_ADDR.second). Both dial the one sni-proxy. `topo.second` is that shoot's view
 * of the lab: the same `ns.seed` and `ns.lb`, its own namespaces under the first shoot's role names
 * (`ns.srv` is <p>-srvb there), so the stack and the checks run unchanged for either shoot.
 *
 * Every veth is created directly inside its namespaces, so nothing of the lab lives in the root
 * namespace and deleting the namespaces removes everything (interfaces, routes, nft tables).
 * A metadata file in /run/rvpn/<prefix>.json lets the sweeper find what a killed run left behind
 * (namespaces, processes, the work directory); containers of the lab's container mode carry the label
 * rvpn.lab.prefix=<prefix>, and the sweeper removes them first, before the namespaces they live in.
 */
import { mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { ipBatch, run } from './sh.js';
import { labContainers, removeLabContainers } from './container-sweep.js';

export const LAB_STATE_DIR = '/run/rvpn';
/** Namespace names are `<prefix>-<role>`; prefix is `rv` + 4 hex digits. */
export const PREFIX_RE = /^rv[0-9a-f]{4}$/;

export const ADDR = {
  seedGw: '10.1.0.1',
  lb: '10.1.0.10',
  srv: '10.1.0.20',
  kapi: '10.1.0.30',
  seedPodNetwork: '10.1.0.0/24',
  wanGw: '198.18.0.1',
  lbWan: '198.18.0.10',
  nodeWan: '198.18.0.20',
  nodeToVsh: '100.96.0.1',
  vsh: '100.96.0.2',
  podGw: '100.96.1.1',
  pod: '100.96.1.10',
  podPort: 8080,
  nodeIp: '10.250.0.10',
  kubeletPort: 10250,
  service: '100.64.0.10',
  servicePort: 80,
  shootServiceNetworks: '100.64.0.0/13',
  shootPodNetworks: '100.96.0.0/11',
  shootNodeNetworks: '10.250.0.0/16',
  // IPv6 payloads: the shoot's pods also have IPv6 (a dual-stack pod network)
  shootPodNetworkV6: 'fd10:96::/32',
  nodeToVshV6: 'fd10:96::1',
  vshV6: ['fd10:96::2', 'fd10:96::3'],
  podGwV6: 'fd10:96:1::1',
  podV6: 'fd10:96:1::10',
} as const;

/** The seed pods' addresses (the seed bridge's /24): lb, vpn-seed-server and the "kube-apiserver". */
export interface SeedSide {
  seedGw: string;
  lb: string;
  srv: string;
  kapi: string;
}
export const SEED_SIDE: SeedSide = { seedGw: ADDR.seedGw, lb: ADDR.lb, srv: ADDR.srv, kapi: ADDR.kapi };

/**
 * The overlapping lab: seed and shoot both on Gardener's defaults (pods 100.96.0.0/11, services
 * 100.64.0.0/13, nodes 10.250.0.0/16), and for IPv6 the shoot's pod network fd10:96::/40 inside a seed
 * node network. `mapped` are the shoot's and the seed server's addresses as they appear in the tunnel.
 */
export const OVERLAP_ADDR = {
  seed: { seedGw: '100.96.0.1', lb: '100.96.0.10', srv: '100.96.0.20', kapi: '100.96.0.30' } satisfies SeedSide,
  seedPodNetwork: '100.96.0.0/11',
  seedServiceNetworks: '100.64.0.0/13',
  seedNodeNetworks: '10.250.0.0/16,fd10:96::/40',
  shootPodNetworkV6: 'fd10:96::/40',
  mapped: { srv: '241.0.0.20', pod: '244.0.1.10', podV6: 'fd6d:6170:401::10', service: '243.0.0.10', nodeIp: '242.0.0.10' },
  /** The HA seed pods in the overlapping lab (beside HA_ADDR's vsh, which are shoot pods anyway). */
  ha: { srv: ['100.96.0.21', '100.96.0.22'], kapi: ['100.96.0.31', '100.96.0.32'], vsh: ['100.96.0.2', '100.96.0.3'] },
  /**
   * The second shoot of a two-shoot lab: its seed pods beside the first shoot's, its node's wan
   * address; everything inside that shoot (node, pods, services) has the first shoot's addresses.
   */
  second: { seed: { seedGw: '100.96.0.1', lb: '100.96.0.10', srv: '100.96.0.23', kapi: '100.96.0.33' } satisfies SeedSide, nodeWan: '198.18.0.21' },
} as const;

export type Role = 'seed' | 'lb' | 'srv' | 'kapi' | 'node' | 'vsh' | 'pod' | 'srv0' | 'srv1' | 'kapi0' | 'kapi1' | 'vsh0' | 'vsh1'
  | 'srvb' | 'kapib' | 'nodeb' | 'vshb' | 'podb';
/** Non-HA lab: one seed server, one kube-apiserver, one vpn-shoot. */
export const ROLES: Role[] = ['seed', 'lb', 'srv', 'kapi', 'node', 'vsh', 'pod'];
/** HA lab: two seed servers, two kube-apiservers (with path-controllers), two vpn-shoot pods. */
export const HA_ROLES: Role[] = ['seed', 'lb', 'srv0', 'srv1', 'kapi0', 'kapi1', 'node', 'vsh0', 'vsh1', 'pod'];
/** The second shoot's namespaces, which its view of the lab names by the first shoot's roles. */
const SECOND_SHOOT_ROLES = { srv: 'srvb', kapi: 'kapib', node: 'nodeb', vsh: 'vshb', pod: 'podb' } as const satisfies Partial<Record<Role, Role>>;
/** Two-shoot lab: the non-HA lab and a second shoot (its own seed server, kube-apiserver, node, vpn-shoot, pod). */
export const TWO_SHOOT_ROLES: Role[] = [...ROLES, ...Object.values(SECOND_SHOOT_ROLES)];
const ALL_ROLES = [...new Set([...ROLES, ...HA_ROLES, ...TWO_SHOOT_ROLES])];

/** HA addresses (the seed pods and the vpn-shoot pods), beside ADDR's. */
export interface HaAddresses {
  srv: readonly [string, string];
  kapi: readonly [string, string];
  vsh: readonly [string, string];
}
export const HA_ADDR: HaAddresses = {
  srv: ['10.1.0.21', '10.1.0.22'],
  kapi: ['10.1.0.31', '10.1.0.32'],
  vsh: ['100.96.0.2', '100.96.0.3'],
} as const;

export function newPrefix(): string {
  return `rv${randomBytes(2).toString('hex')}`;
}

export interface LabMeta {
  prefix: string;
  ownerPid: number;
  createdAt: string;
  namespaces: string[];
  pids: number[];
  /** The run's work directory (certificates, logs, volumes); removed when a killed run is swept. */
  workDir?: string;
}

/** Marks a Topology built as the second shoot's view of a two-shoot lab (module-private). */
const OWNER = Symbol('the two-shoot lab this topology is the second shoot\'s view of');

export interface TopologyOptions {
  ha?: boolean;
  overlap?: boolean;
  /** A second shoot on the first one's ranges beside it (`second`); overlapping and non-HA only. */
  twoShoots?: boolean;
  [OWNER]?: Topology;
}

export class Topology {
  readonly prefix: string;
  readonly ns: Record<Role, string>;
  readonly ha: boolean;
  readonly roles: Role[];
  /** Whether the seed side uses the shoot's ranges (OVERLAP_ADDR). */
  readonly overlap: boolean;
  /** The seed pods' addresses of this lab (of this shoot, in a two-shoot lab). */
  readonly seed: SeedSide;
  /** The shoot node's wan address. */
  readonly nodeWan: string;
  /** The HA pods' addresses of this lab (HA_ADDR, or OVERLAP_ADDR.ha when overlapping). */
  readonly haAddr: HaAddresses;
  /** A two-shoot lab's second shoot: its view of this lab (created and destroyed with it). */
  readonly second: Topology | undefined;
  /** For the second shoot's view: the lab that creates, tracks and destroys the namespaces. */
  readonly owner: Topology | undefined;
  private created = false;
  private readonly extraPids = new Set<number>();
  private workDir: string | undefined;

  constructor(prefix = newPrefix(), opts: TopologyOptions = {}) {
    if (!PREFIX_RE.test(prefix)) throw new Error(`lab prefix ${JSON.stringify(prefix)} must match ${PREFIX_RE}`);
    const owner = opts[OWNER];
    const twoShoots = opts.twoShoots ?? false;
    if (twoShoots && (!opts.overlap || opts.ha)) throw new Error('a two-shoot lab is the overlapping non-HA lab (overlap: true, no ha)');
    this.prefix = prefix;
    this.owner = owner;
    this.ha = opts.ha ?? false;
    this.overlap = opts.overlap ?? false;
    this.seed = owner ? OVERLAP_ADDR.second.seed : this.overlap ? OVERLAP_ADDR.seed : SEED_SIDE;
    this.nodeWan = owner ? OVERLAP_ADDR.second.nodeWan : ADDR.nodeWan;
    this.haAddr = this.overlap ? OVERLAP_ADDR.ha : HA_ADDR;
    // a view creates nothing of its own: the lab's namespaces are the owner's
    this.roles = owner ? [] : twoShoots ? TWO_SHOOT_ROLES : this.ha ? HA_ROLES : ROLES;
    const ns = Object.fromEntries(ALL_ROLES.map((r) => [r, `${prefix}-${r}`])) as Record<Role, string>;
    if (owner) for (const [r, b] of Object.entries(SECOND_SHOOT_ROLES)) ns[r as Role] = `${prefix}-${b}`;
    this.ns = ns;
    this.second = twoShoots ? new Topology(prefix, { overlap: true, [OWNER]: this }) : undefined;
  }

  /** Names of the namespaces this lab creates. */
  get namespaces(): string[] {
    return this.roles.map((r) => this.ns[r]);
  }

  get metaFile(): string {
    return `${LAB_STATE_DIR}/${this.prefix}.json`;
  }

  /** Records a process started inside the lab so the sweeper can kill it if this run dies. */
  trackPid(pid: number): void {
    if (this.owner) return this.owner.trackPid(pid);
    this.extraPids.add(pid);
    this.writeMeta();
  }

  /**
   * Records the run's work directory (named <prefix>-…) so the sweeper removes it if this run dies.
   * The second shoot's work directory lies inside the lab's, which the sweeper removes whole.
   */
  trackWorkDir(dir: string): void {
    if (this.owner) {
      const lab = this.owner.workDir;
      if (!lab || !dir.startsWith(`${lab}/`)) throw new Error(`the second shoot's work directory ${dir} must lie inside the lab's (${lab ?? 'none yet'})`);
      return;
    }
    if (!basename(dir).startsWith(`${this.prefix}-`)) throw new Error(`work directory ${dir} must be named ${this.prefix}-…`);
    this.workDir = dir;
    if (this.created) this.writeMeta();
  }

  private writeMeta(): void {
    mkdirSync(LAB_STATE_DIR, { recursive: true });
    const meta: LabMeta = {
      prefix: this.prefix, ownerPid: process.pid, createdAt: new Date().toISOString(), namespaces: this.namespaces, pids: [...this.extraPids],
      ...(this.workDir ? { workDir: this.workDir } : {}),
    };
    writeFileSync(this.metaFile, JSON.stringify(meta, null, 2));
  }

  async create(opts: { classic?: boolean } = {}): Promise<void> {
    if (this.owner) throw new Error("the second shoot's view creates nothing: its lab's create() builds both shoots");
    const existing = (await run(['ip', 'netns', 'list'])).stdout;
    for (const n of this.namespaces) {
      if (new RegExp(`^${n}\\b`, 'm').test(existing)) throw new Error(`network namespace ${n} already exists; run \`pnpm sweep\` first`);
    }
    this.writeMeta();
    this.created = true;
    try {
      await this.build(opts.classic ?? false);
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  private async build(classic: boolean): Promise<void> {
    const { ns } = this;
    await ipBatch(this.namespaces.map((n) => `netns add ${n}`));
    const sd = this.seed;
    const ha = this.haAddr;
    const second = this.second;
    // [role, its port on the seed bridge, address]
    const seedPods: Array<[Role, string, string]> = this.ha
      ? [['srv0', 'psrv0', ha.srv[0]], ['srv1', 'psrv1', ha.srv[1]], ['kapi0', 'pkapi0', ha.kapi[0]], ['kapi1', 'pkapi1', ha.kapi[1]]]
      : [['srv', 'srv0', sd.srv], ['kapi', 'kapi0', sd.kapi], ...(second ? [['srvb', 'srvb0', second.seed.srv], ['kapib', 'kapib0', second.seed.kapi]] as Array<[Role, string, string]> : [])];
    // every shoot's node on the wan bridge: [its view, its port on the wan bridge]
    const shoots: Array<[Topology, string]> = [[this, 'nodew0'], ...(second ? [[second, 'nodebw0']] as Array<[Topology, string]> : [])];
    await ipBatch([
      // bridges in the seed namespace
      `link add br0 netns ${ns.seed} type bridge`,
      `link add brw netns ${ns.seed} type bridge`,
      // seed pods on br0
      `link add eth0 netns ${ns.lb} type veth peer name lb0 netns ${ns.seed}`,
      ...seedPods.map(([r, port]) => `link add eth0 netns ${ns[r]} type veth peer name ${port} netns ${ns.seed}`),
      // wan: the load balancer and the shoot nodes on brw
      `link add wan0 netns ${ns.lb} type veth peer name lbw0 netns ${ns.seed}`,
      ...shoots.map(([v, port]) => `link add wan0 netns ${v.ns.node} type veth peer name ${port} netns ${ns.seed}`),
    ]);
    await ipBatch([
      'link set lo up',
      'link set br0 up', 'link set brw up',
      'link set lb0 master br0', ...seedPods.map(([, port]) => `link set ${port} master br0`),
      'link set lbw0 master brw', ...shoots.map(([, port]) => `link set ${port} master brw`),
      'link set lb0 up', ...seedPods.map(([, port]) => `link set ${port} up`), 'link set lbw0 up', ...shoots.map(([, port]) => `link set ${port} up`),
      `addr add ${sd.seedGw}/24 dev br0`,
      `addr add ${ADDR.wanGw}/24 dev brw`,
    ], ns.seed);
    await ipBatch(['link set lo up', 'link set eth0 up', 'link set wan0 up', `addr add ${sd.lb}/24 dev eth0`, `addr add ${ADDR.lbWan}/24 dev wan0`], ns.lb);
    for (const [r, , addr] of seedPods) {
      await ipBatch(['link set lo up', 'link set eth0 up', `addr add ${addr}/24 dev eth0`, ...(r.startsWith('srv') ? [`route add default via ${sd.seedGw}`] : [])], ns[r]);
    }
    for (const [v] of shoots) await v.buildShoot(v === this && this.ha ? [['vsh0', ha.vsh[0]], ['vsh1', ha.vsh[1]]] : [['vsh', ADDR.vsh]]);

    // Only the shoot nodes forward. The seed namespace forwards only in the classic direction (the
    // seed's egress NAT toward the shoot's LoadBalancer); the load balancer never forwards.
    await run(['sysctl', '-qw', `net.ipv4.ip_forward=${classic ? 1 : 0}`], { ns: ns.seed });
    for (const n of [ns.seed, ...shoots.map(([v]) => v.ns.node)]) {
      // bridged frames must not go through the IP firewall (br_netfilter is built in here)
      await run(['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0'], { ns: n });
      await run(['sysctl', '-qw', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0'], { ns: n, allowFail: true });
    }
    for (const [v] of shoots) await run(['nft', '-f', '-'], { ns: v.ns.node, input: nodeFirewall(classic) });
    await run(['nft', '-f', '-'], { ns: ns.seed, input: seedRouterFirewall(classic) });
  }

  /**
   * One shoot inside this (view's) namespaces, its wan0 already linked: the node with its bridges,
   * the vpn-shoot pods (on br1) and the application pod (on br0). Every shoot of a lab gets the same
   * addresses; only the node's wan address differs.
   */
  private async buildShoot(shootPods: Array<[Role, string]>): Promise<void> {
    const { ns } = this;
    const a = ADDR;
    await ipBatch([
      `link add br1 netns ${ns.node} type bridge`,
      ...shootPods.map(([r], i) => `link add eth0 netns ${ns[r]} type veth peer name vsh${i} netns ${ns.node}`),
      `link add br0 netns ${ns.node} type bridge`,
      `link add eth0 netns ${ns.pod} type veth peer name pod0 netns ${ns.node}`,
    ]);
    await ipBatch([
      'link set lo up', 'link set wan0 up', 'link set br1 up', 'link set br0 up', 'link set pod0 master br0', 'link set pod0 up',
      ...shootPods.flatMap((_, i) => [`link set vsh${i} master br1`, `link set vsh${i} up`]),
      `addr add ${this.nodeWan}/24 dev wan0`,
      `addr add ${a.nodeIp}/32 dev lo`,
      `addr add ${a.nodeToVsh}/24 dev br1`,
      `addr add ${a.podGw}/24 dev br0`,
      `addr add ${a.nodeToVshV6}/64 dev br1 nodad`,
      `addr add ${a.podGwV6}/64 dev br0 nodad`,
    ], ns.node);
    for (const [i, [r, addr]] of shootPods.entries()) {
      await ipBatch(['link set lo up', 'link set eth0 up', `addr add ${addr}/24 dev eth0`, `route add default via ${a.nodeToVsh}`,
        `addr add ${a.vshV6[i]}/64 dev eth0 nodad`, `route add default via ${a.nodeToVshV6}`], ns[r]);
    }
    await ipBatch(['link set lo up', 'link set eth0 up', `addr add ${a.pod}/24 dev eth0`, `route add default via ${a.podGw}`,
      `addr add ${a.podV6}/64 dev eth0 nodad`, `route add default via ${a.podGwV6}`], ns.pod);
    await run(['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1'], { ns: ns.node });
  }

  /** Deletes every namespace (and with them every interface, route and nft table) and the metadata. */
  async destroy(): Promise<void> {
    if (!this.created) return; // the second shoot's view is never created: its lab destroys both
    await sweepPrefix(this.prefix, this.namespaces);
    this.created = false;
  }
}

/** The shoot node: kube-proxy's service DNAT, masquerade to the wan, and no inbound connections. */
export function nodeFirewall(classic: boolean): string {
  const a = ADDR;
  return `
table inet rvlab_node
delete table inet rvlab_node
table inet rvlab_node {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" counter drop comment "nothing from the seed may open a connection into the shoot"
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan0" ct state established,related accept
    ${classic ? 'iifname "wan0" ct status dnat tcp dport 4314 accept comment "classic direction: the LoadBalancer of vpn-shoot"' : ''}
    iifname "wan0" counter drop comment "nothing from the seed may open a connection into the shoot"
  }
}
table ip rvlab_nat
delete table ip rvlab_nat
table ip rvlab_nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${a.service} tcp dport ${a.servicePort} dnat to ${a.pod}:${a.podPort}
    ${classic ? `iifname "wan0" ip daddr ${a.nodeWan} tcp dport 4314 dnat to ${a.vsh}:4314` : ''}
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr ${a.service} tcp dport ${a.servicePort} dnat to ${a.pod}:${a.podPort}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" masquerade
  }
}
`;
}

/** The seed's router namespace: no forwarding at all in the reversed direction. */
export function seedRouterFirewall(classic: boolean): string {
  return `
table inet rvlab_seed
delete table inet rvlab_seed
table inet rvlab_seed {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ${classic ? 'iifname "br0" oifname "brw" accept\n    iifname "brw" oifname "br0" ct state established,related accept' : ''}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ${classic ? 'oifname "brw" masquerade' : ''}
  }
}
`;
}

async function pidAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the run's containers (by label), kills every process inside the namespaces, deletes them
 * and the metadata file; with `removeWorkDir` (a killed run) also the work directory the metadata names.
 */
async function sweepPrefix(prefix: string, namespaces: string[], opts: { removeWorkDir?: boolean } = {}): Promise<string[]> {
  // containers first: deleting their namespaces under them would leave exited containers behind
  await removeLabContainers(prefix);
  const existing = (await run(['ip', 'netns', 'list'])).stdout;
  const present = namespaces.filter((n) => new RegExp(`^${n}\\b`, 'm').test(existing));
  const metaFile = `${LAB_STATE_DIR}/${prefix}.json`;
  let meta: LabMeta | undefined;
  try {
    meta = JSON.parse(readFileSync(metaFile, 'utf8')) as LabMeta;
  } catch {
    meta = undefined;
  }
  const pids = new Set<number>(meta?.pids ?? []);
  for (const n of present) {
    const r = await run(['ip', 'netns', 'pids', n], { allowFail: true });
    for (const p of r.stdout.split(/\s+/).filter(Boolean)) pids.add(Number(p));
  }
  for (const p of pids) {
    if (p === process.pid) continue;
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  for (const n of present) await run(['ip', 'netns', 'del', n], { allowFail: true });
  // files a run gave a namespace (`ip netns exec` mounts /etc/netns/<ns>/* over /etc: bench:scale's hosts)
  for (const n of namespaces) rmSync(`/etc/netns/${n}`, { recursive: true, force: true });
  // only a directory named after the run (never a path a damaged metadata file points elsewhere)
  if (opts.removeWorkDir && meta?.workDir && basename(meta.workDir).startsWith(`${prefix}-`)) rmSync(meta.workDir, { recursive: true, force: true });
  rmSync(metaFile, { force: true });
  return present;
}

/**
 * Removes what lab runs left behind: namespaces named rvXXXX-<role> whose owner process is gone
 * (or all of them with force). Returns the prefixes removed.
 */
export async function sweep(opts: { force?: boolean; log?: (line: string) => void } = {}): Promise<string[]> {
  const listed = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
  const byPrefix = new Map<string, string[]>();
  for (const n of listed) {
    const m = /^(rv[0-9a-f]{4})-([a-z0-9]+)$/.exec(n);
    if (!m || !ALL_ROLES.includes(m[2] as Role)) continue;
    byPrefix.set(m[1]!, [...(byPrefix.get(m[1]!) ?? []), n]);
  }
  if (existsSync(LAB_STATE_DIR)) {
    for (const f of readdirSync(LAB_STATE_DIR)) {
      const m = /^(rv[0-9a-f]{4})\.json$/.exec(f);
      if (m && !byPrefix.has(m[1]!)) byPrefix.set(m[1]!, []);
    }
  }
  for (const c of await labContainers()) {
    if (PREFIX_RE.test(c.prefix) && !byPrefix.has(c.prefix)) byPrefix.set(c.prefix, []);
  }
  const removed: string[] = [];
  for (const [prefix, namespaces] of byPrefix) {
    let owner: number | undefined;
    try {
      owner = (JSON.parse(readFileSync(`${LAB_STATE_DIR}/${prefix}.json`, 'utf8')) as LabMeta).ownerPid;
    } catch {
      owner = undefined;
    }
    if (!opts.force && owner !== undefined && (await pidAlive(owner))) {
      opts.log?.(`sweep: ${prefix} belongs to running process ${owner}; left alone (use --force)`);
      continue;
    }
    const gone = await sweepPrefix(prefix, namespaces.length ? namespaces : ALL_ROLES.map((r) => `${prefix}-${r}`), { removeWorkDir: true });
    opts.log?.(`sweep: removed ${prefix} (${gone.length} namespaces)`);
    removed.push(prefix);
  }
  return removed;
}
