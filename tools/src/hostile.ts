#!/usr/bin/env node
/**
 * The hostile-peer toolkit's CLI: one attack per run, from the namespace it runs in, printing one
 * JSON line with what the server did. `node tools/dist/hostile.js help` lists the attacks.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { formatMac, macFromAddress } from '@rvpn/bonding';
import {
  badFrameAttack, badHellos, connectFlood, endpointHello, forgeIp, forgeL2, helloSpellings, inject, IP_KINDS, KeepaliveMonitor, L2_KINDS,
  macFlood, neverRead, parseDuration, parseHostPort, rttFigures, shootHello, slowloris, slowReaders, tlsFlood, trickleHello,
  LAB_FORGE_CONTEXT, type ForgeContext, type FrameStage, type IpKind, type L2Context, type L2Kind, type MacFloodMode, type SlowPayload,
} from './hostile/index.js';

const USAGE = `usage: node tools/dist/hostile.js <attack> [options]   (one JSON line of results on stdout)

Entry points (sni-proxy 443/8443/8132, seed server 1194/9443, status ports):
  slowloris       --target H:P --payload http|connect|tls [--rate 50/s --duration 5s --interval 1s --hold 8s]
                  one byte per --interval on each connection; the attacker never closes first
  trickle-hello   --target H:P --sni NAME --mode record|segment [--clients 4 --gap 0ms --duration 5s --pad BYTES]
                  a post-quantum ClientHello (~1.5 KB, or padded) as 1-byte TLS records / 1 byte per TCP segment
  bad-hello       --target H:P --sni ROUTED-NAME [--rate 100/s --duration 5s --hold 8s --only a,b]
                  malformed and unroutable ClientHellos (unknown and missing SNI included), never closed by us
  tls-flood       --target H:P --sni NAME [--header "Name: value" (CONNECT first) --cert F --key F --rate 100/s --duration 5s]
  connect-flood   --target H:P --header "Reversed-VPN: outbound|1194||…" [--then nothing|hello --rate 200/s --duration 5s --hold 12s]
Tunnel (1194, directly or --header through sni-proxy):
  bad-frames      --target H:P --stage pre-tls|pre-hello|post-hello [--cert F --key F --servername N --address V6 (post-hello, HA)
                  --rate 20/s --duration 5s --hold 3s --only PREFIX,…]   every frame type with bad lengths
  never-read      --target H:P --cert F --key F --address V6 [--ping-bytes 1048576 --rate 50/s --duration 5s]
  hello-spellings --target H:P --cert F --key F --address V6 [--count 200 --rate 40/s --hold 3s]   (HA)
  mac-flood       --target H:P --cert F --key F --address V6 --mode announce|random-sources|broadcast [--rate 2000/s --duration 5s]   (HA)
Egress proxy (9443):
  slow-reader     --target H:P --ca F --cert F --key F --url http://IP:PORT/path [--readers 20 --duration 5s]
Forged packets into the shoot side's TUN/TAP (python3, AF_PACKET; run in the vpn-shoot namespace):
  inject          --ifname tun0 --kind ${IP_KINDS.join('|')} [--rate 1000/s --count 1000 --quote SRC:PORT,DST:PORT]
  inject-l2       --ifname bond0 --kind ${L2_KINDS.join('|')} --context JSON [--rate 1000/s --count 1000]
Measuring:
  keepalive       --target H:P --cert F --key F [--header … --ca F --servername N --interval 50ms --vpn-network CIDR --address V6 (HA endpoint)]
                  a light tunnel client: one JSON line per PONG {"t","rtt"} and per event {"t","event"}; runs until SIGTERM
Common: --sources A,B,… (source addresses, round-robin)  --servername (TLS SNI, default vpn-seed-server)`;

const { positionals, values: v } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: 'string' }, sources: { type: 'string' }, rate: { type: 'string' }, duration: { type: 'string' }, hold: { type: 'string' },
    payload: { type: 'string' }, interval: { type: 'string' }, sni: { type: 'string' }, mode: { type: 'string' }, clients: { type: 'string' },
    gap: { type: 'string' }, only: { type: 'string' }, header: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' },
    then: { type: 'string' }, stage: { type: 'string' }, servername: { type: 'string' }, address: { type: 'string' }, 'ping-bytes': { type: 'string' },
    count: { type: 'string' }, url: { type: 'string' }, readers: { type: 'string' }, ifname: { type: 'string' }, kind: { type: 'string' },
    quote: { type: 'string' }, context: { type: 'string' }, 'vpn-network': { type: 'string' }, pad: { type: 'string' },
  },
});

const need = (name: keyof typeof v): string => {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new Error(`--${name} is required for ${positionals[0]}\n\n${USAGE}`);
  return x;
};
const num = (name: keyof typeof v, dflt: number) => (v[name] ? Number(v[name]) : dflt);
const dur = (name: keyof typeof v, dflt: string) => parseDuration((v[name] as string | undefined) ?? dflt);
const sources = v.sources ? v.sources.split(',').filter(Boolean) : undefined;
const tlsFiles = () => ({ cert: need('cert'), key: need('key'), ...(v.ca ? { ca: v.ca } : {}) });
const tunnelTarget = () => ({ target: parseHostPort(need('target')), ...(v.header ? { viaHeader: v.header } : {}), ...(sources ? { sources } : {}), servername: v.servername ?? 'vpn-seed-server' });

async function main(): Promise<unknown> {
  const attack = positionals[0];
  switch (attack) {
    case 'slowloris':
      return slowloris({ target: parseHostPort(need('target')), sources, payload: need('payload') as SlowPayload, rate: num('rate', 50), durationMs: dur('duration', '5s'), byteIntervalMs: dur('interval', '1s'), holdMs: dur('hold', '8s') });
    case 'trickle-hello':
      return trickleHello({ target: parseHostPort(need('target')), sources, serverName: need('sni'), mode: (v.mode ?? 'record') as 'record' | 'segment', clients: num('clients', 4), gapMs: dur('gap', '0ms'), durationMs: dur('duration', '5s'), ...(v.pad ? { padTo: Number(v.pad) } : {}) });
    case 'bad-hello':
      return badHellos({ target: parseHostPort(need('target')), sources, routedName: need('sni'), rate: num('rate', 100), durationMs: dur('duration', '5s'), holdMs: dur('hold', '8s'), ...(v.only ? { only: v.only.split(',') } : {}) });
    case 'tls-flood':
      return tlsFlood({
        target: parseHostPort(need('target')), sources, serverName: v.sni ?? v.servername ?? 'vpn-seed-server', rate: num('rate', 100), durationMs: dur('duration', '5s'),
        ...(v.header ? { via: { header: v.header } } : {}), ...(v.cert && v.key ? { cert: readFileSync(v.cert), key: readFileSync(v.key) } : {}),
      });
    case 'connect-flood':
      return connectFlood({ target: parseHostPort(need('target')), sources, header: need('header'), then: (v.then ?? 'nothing') as 'nothing' | 'hello', rate: num('rate', 200), durationMs: dur('duration', '5s'), holdMs: dur('hold', '12s') });
    case 'bad-frames': {
      const stage = need('stage') as FrameStage;
      const address = v.address;
      const base = parseInt(address?.split(':').pop() ?? '1000', 16);
      const prefix = address?.slice(0, address.lastIndexOf(':') + 1);
      return badFrameAttack({
        ...tunnelTarget(), ...(stage === 'pre-tls' ? {} : { tls: tlsFiles() }), stage, rate: num('rate', 20), durationMs: dur('duration', '5s'), holdMs: dur('hold', '3s'),
        ...(v.only ? { only: v.only.split(',') } : {}),
        // HA: every session its own endpoint slot (a base address and the next 80)
        ...(address ? { hello: (i: number) => endpointHello(`hostile/frames/${i}`, `${prefix}${(base + (i % 80)).toString(16)}`, v['vpn-network']) } : {}),
      });
    }
    case 'never-read':
      return neverRead({ ...tunnelTarget(), tls: tlsFiles(), hello: v.address ? endpointHello('hostile/never-read', v.address, v['vpn-network']) : shootHello('hostile/never-read', v['vpn-network']), pingBytes: num('ping-bytes', 1 << 20), rate: num('rate', 50), durationMs: dur('duration', '5s') });
    case 'hello-spellings':
      return helloSpellings({ ...tunnelTarget(), tls: tlsFiles(), address: need('address'), count: num('count', 200), rate: num('rate', 40), holdMs: dur('hold', '3s'), ...(v['vpn-network'] ? { vpnNetwork: v['vpn-network'] } : {}) });
    case 'mac-flood':
      return macFlood({ ...tunnelTarget(), tls: tlsFiles(), address: need('address'), mode: need('mode') as MacFloodMode, rate: num('rate', 2000), durationMs: dur('duration', '5s'), ...(v['vpn-network'] ? { vpnNetwork: v['vpn-network'] } : {}) });
    case 'slow-reader': {
      const u = new URL(need('url'));
      return slowReaders({ proxy: parseHostPort(need('target')), ca: need('ca'), cert: need('cert'), key: need('key'), url: { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80), path: `${u.pathname}${u.search}` }, readers: num('readers', 20), durationMs: dur('duration', '5s') });
    }
    case 'inject': {
      const kind = need('kind') as IpKind;
      if (!IP_KINDS.includes(kind)) throw new Error(`--kind must be one of ${IP_KINDS.join(', ')}`);
      let ctx: ForgeContext | undefined;
      if (v.quote) {
        const [a, b] = v.quote.split(',');
        const s = parseHostPort(a!);
        const d = parseHostPort(b!);
        ctx = { ...LAB_FORGE_CONTEXT, otherFlow: { src: s.host, sport: s.port, dst: d.host, dport: d.port } };
      }
      const packets = Array.from({ length: 16 }, () => forgeIp(kind, ctx)).flat();
      const count = num('count', 1000);
      const rate = num('rate', 1000);
      const r = await inject(need('ifname'), 'ip', packets, rate, count);
      return { attack: 'inject', target: need('ifname'), rate, rateUnit: 'packets/s', durationMs: Math.round(r.seconds * 1000), kind, distinctPackets: packets.length, ...r };
    }
    case 'inject-l2': {
      const kind = need('kind') as L2Kind;
      if (!L2_KINDS.includes(kind)) throw new Error(`--kind must be one of ${L2_KINDS.join(', ')}`);
      const ctx = JSON.parse(need('context')) as L2Context;
      const packets = Array.from({ length: 16 }, () => forgeL2(kind, ctx)).flat();
      const count = num('count', 1000);
      const rate = num('rate', 1000);
      const r = await inject(need('ifname'), 'ethernet', packets, rate, count);
      return { attack: 'inject-l2', target: need('ifname'), rate, rateUnit: 'frames/s', durationMs: Math.round(r.seconds * 1000), kind, distinctFrames: packets.length, ...r };
    }
    case 'keepalive': {
      const rtts: number[] = [];
      let downs = 0;
      const m = new KeepaliveMonitor({
        ...tunnelTarget(), tls: tlsFiles(), intervalMs: dur('interval', '50ms'),
        hello: () => (v.address ? endpointHello(`hostile/keepalive/${process.pid}`, v.address, v['vpn-network']) : shootHello(`keepalive-monitor/${process.pid}`, v['vpn-network'])),
        onSample: (s) => {
          rtts.push(s.rtt);
          process.stdout.write(`${JSON.stringify({ t: s.t, rtt: Math.round(s.rtt * 1000) / 1000 })}\n`);
        },
        onEvent: (e) => {
          if (e.event === 'down') downs++;
          process.stdout.write(`${JSON.stringify(e)}\n`);
        },
      });
      m.start();
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', () => resolve());
        process.once('SIGINT', () => resolve());
      });
      await m.stop();
      return { attack: 'keepalive', target: need('target'), rate: 1000 / dur('interval', '50ms'), rateUnit: 'PINGs/s', durationMs: 0, rtt: rttFigures(rtts), reconnects: m.reconnects, downs };
    }
    case 'mac-of': // a helper for scripts: the bond MAC of an address
      return { mac: formatMac(macFromAddress(need('address'))) };
    case undefined:
    case 'help':
    case '--help':
      console.log(USAGE);
      return undefined;
    default:
      throw new Error(`unknown attack ${JSON.stringify(attack)}\n\n${USAGE}`);
  }
}

main().then((r) => {
  if (r !== undefined) process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}, (err: Error) => {
  console.error(err.message);
  process.exit(2);
});
