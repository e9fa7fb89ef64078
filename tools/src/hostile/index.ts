/**
 * The hostile-peer toolkit: speaks our protocols badly on purpose, at stated rates for stated
 * durations, and reports what the server did (JSON). The CLI (`node tools/dist/hostile.js <attack>`,
 * tools/README.md) runs one attack from inside a lab namespace; e2e/src/hostile.spec.ts runs them
 * against the lab while a second shoot's tunnel keeps its keepalive, and e2e/src/chaos.spec.ts and
 * tools/src/soak.ts reuse the process sampling.
 *
 *   const r = await slowloris({ target: { host: '198.18.0.10', port: 443 }, payload: 'tls', rate: 50,
 *     durationMs: 5000, byteIntervalMs: 1000, holdMs: 8000 });
 *   // r.closedByServer, r.closeAfterMs.max, r.stillOpen …
 */
export { parseHostPort, parseDuration, percentile, paced, ConnLedger, classifyAnswer, type AttackResult, type HostPort } from './common.js';
export { clientHello, clientHelloMessage, toRecords, malformedHellos, GROUP_X25519MLKEM768, type ClientHelloOptions, type MalformedHello } from './clienthello.js';
export { slowloris, trickleHello, badHellos, tlsFlood, connectFlood, type SlowPayload } from './entry-attacks.js';
export { badFrames, badFrameAttack, neverRead, helloSpellings, addressSpellings, macFlood, rttFigures, type BadFrame, type FrameStage, type MacFloodMode, type TunnelTarget } from './tunnel-attacks.js';
export { dialTls, dialRaw, handshake, rawFrame, frame, pingFrame, shootHello, endpointHello, HandSession, type TlsFiles } from './tunnel-client.js';
export { KeepaliveMonitor, type KeepaliveSample, type KeepaliveEvent } from './keepalive.js';
export { slowReaders } from './egress-attacks.js';
export { forgeIp, forgeL2, inject, IP_KINDS, L2_KINDS, MARK_TTL, LAB_FORGE_CONTEXT, linkLocal, type IpKind, type L2Kind, type L2Context, type ForgeContext } from './packets.js';
export {
  runAttack, procStats, RssSampler, MonitorProcess, addAddresses, installMarkCounters, readMarkCounters, removeMarkCounters, type MarkCounters,
  startSecondShoot, SECOND_SHOOT, HOSTILE_CLI, MiB, mib, type SecondShoot,
} from './lab.js';
