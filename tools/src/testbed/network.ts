/**
 * The test bed's networks (see config.ts for the picture): the wan bridge, the host's leg into it, the
 * two node namespaces with their routes, NAT and the shoot's inbound firewall. Everything but the host's
 * veth lives in the namespaces, so deleting them removes it all.
 */
import { existsSync } from 'node:fs';
import { ipBatch, run } from '../lab/sh.js';
import { NODES, SHOOT, WAN, type NodeSpec } from './config.js';

const nsExists = (ns: string) => existsSync(`/run/netns/${ns}`);

async function sysctl(ns: string, values: Record<string, string>): Promise<void> {
  const script = Object.entries(values).map(([k, v]) => `echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`).join(' && ');
  await run(['ip', 'netns', 'exec', ns, 'sh', '-c', script]);
}

async function nft(ns: string, script: string): Promise<void> {
  await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: script });
}

/** The shoot node's inbound firewall: from the wan only replies, plus the LoadBalancer ports opened for classic mode. */
export function shootFirewall(open: Array<{ ip: string; port: number }>): string {
  const opens = open.map((o) => `    iifname "eth0" ct state new ct original ip daddr ${o.ip} meta l4proto tcp ct original proto-dst ${o.port} accept`).join('\n');
  return [
    'table inet rvtb-fw',
    'delete table inet rvtb-fw',
    'table inet rvtb-fw {',
    // before kube-proxy's chains (priority filter = 0): nothing from the wan may open a connection
    '  chain input {',
    '    type filter hook input priority -10; policy accept;',
    '    iifname "eth0" ct state established,related accept',
    '    iifname "eth0" counter drop',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority -10; policy accept;',
    '    iifname "eth0" ct state established,related accept',
    ...(opens ? [opens] : []),
    '    iifname "eth0" counter drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

async function node(n: NodeSpec, peerName: string): Promise<void> {
  await run(['ip', 'netns', 'add', n.ns]);
  await ipBatch([`link add ${peerName} type veth peer name eth0 netns ${n.ns}`, `link set ${peerName} master ${WAN.bridge} up`], WAN.ns);
  const other = n.name === 'seed' ? NODES.shoot : NODES.seed;
  const lines = [
    'link set lo up',
    `address add ${n.wanIp}/${WAN.prefix} dev eth0`,
    'link set eth0 up',
    // this kernel has no dummy interfaces: the node-local addresses (cluster DNS; the node IP)
    // live on lo. ClusterIPs are DNATed by kube-proxy on output; the node needs a route to get there
    // (a dead end when no Service matches, rather than the wan).
    `address add ${n.dnsIp}/32 dev lo`,
    `route add ${n.serviceCidr} dev lo`,
    // the other cluster's LoadBalancer pool is behind the other node
    `route add ${other.lbPool} via ${other.wanIp}`,
  ];
  lines.push(`address add ${n.nodeIp}/32 dev lo`);
  if (n.name === 'shoot') lines.push(`address add ${SHOOT.advertiseAddress}/32 dev lo`);
  await ipBatch(lines, n.ns);
  await sysctl(n.ns, {
    'net.ipv4.ip_forward': '1',
    'net.bridge.bridge-nf-call-iptables': '1',
    'net.bridge.bridge-nf-call-ip6tables': '1',
    'net.ipv4.conf.all.route_localnet': '1',
  });
  // pods leave through eth0 with the node's wan address (the seed's classic dials, the shoot's everything)
  await nft(n.ns, `table ip rvtb-nat\ndelete table ip rvtb-nat\ntable ip rvtb-nat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "eth0" ip saddr != ${n.wanIp} masquerade\n  }\n}\n`);
  if (n.name === 'shoot') await nft(n.ns, shootFirewall([]));
}

export async function networkUp(): Promise<void> {
  await run(['ip', 'netns', 'add', WAN.ns]);
  await ipBatch(['link set lo up', `link add ${WAN.bridge} type bridge`, `link set ${WAN.bridge} up`], WAN.ns);
  await run(['ip', 'link', 'add', WAN.hostIf, 'type', 'veth', 'peer', 'name', 'host', 'netns', WAN.ns]);
  await ipBatch([`link set host master ${WAN.bridge} up`], WAN.ns);
  await ipBatch([
    `address add ${WAN.host}/${WAN.prefix} dev ${WAN.hostIf}`,
    `link set ${WAN.hostIf} up`,
    `route add ${NODES.seed.lbPool} via ${NODES.seed.wanIp} dev ${WAN.hostIf}`,
    `route add ${NODES.shoot.lbPool} via ${NODES.shoot.wanIp} dev ${WAN.hostIf}`,
  ]);
  await node(NODES.seed, 'seed');
  await node(NODES.shoot, 'shoot');
}

/** Opens exactly these LoadBalancer address:port pairs into the shoot (classic mode), closing every other. */
export async function setShootOpenings(open: Array<{ ip: string; port: number }>): Promise<void> {
  await nft(NODES.shoot.ns, shootFirewall(open));
}

export async function networkDown(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of [NODES.shoot.ns, NODES.seed.ns, WAN.ns]) {
    if (!nsExists(ns)) continue;
    await run(['ip', 'netns', 'del', ns], { allowFail: true });
    removed.push(ns);
  }
  // the host's veth went with its peer in rvtb-wan; its routes with it
  if ((await run(['ip', 'link', 'show', WAN.hostIf], { allowFail: true })).code === 0) {
    await run(['ip', 'link', 'del', WAN.hostIf], { allowFail: true });
    removed.push(WAN.hostIf);
  }
  return removed;
}
