/**
 * ensureCertificates on its own (the operator's reconcile and the shoot-setup one-shot both call it):
 * reuse while nothing is due, per-leaf renewal, and the renewal / CA-rotation requests by annotation.
 * The "cluster" is a map of the Secrets a previous run returned, read back the way the API would.
 */
import { describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import type { K8sObject, VpnSpec } from '@rvpn/k8s-render';
import { FINISH_CA_ROTATION_ANNOTATION, RENEW_ANNOTATION, ROTATE_CA_ANNOTATION, ensureCertificates, secretStrings, type SecretRead } from './certificates.js';

const spec: VpnSpec = {
  shoot: { name: 'a', project: 'p' }, namespace: 'shoot--p--a', endpoint: 'api.a.p.example',
  networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4'] },
  highAvailability: { failureTolerance: 'none' }, annotations: {},
  images: { vpnSeedServer: 's', vpnShoot: 'c', pathController: 'p' },
};
const mode = { reversed: true, ha: false, reason: '' };
const day = 86_400_000;

class Store {
  secrets = new Map<string, SecretRead>();
  read = async (name: string) => this.secrets.get(name);
  keep(objs: K8sObject[]) {
    for (const o of objs) this.secrets.set(o.metadata.name, { data: secretStrings(o), annotations: { ...(this.secrets.get(o.metadata.name)?.annotations ?? {}) } });
  }
  annotate(name: string, key: string, value: string) {
    this.secrets.get(name)!.annotations[key] = value;
  }
  cert(name: string, key = 'tls.crt') {
    return this.secrets.get(name)!.data[key]!;
  }
}

async function run(store: Store, t: number, graceMs = 2 * day) {
  const c = await ensureCertificates(store.read, { namespace: spec.namespace, spec, mode }, { certValidityDays: 10, caValidityDays: 100, caRotationGraceMs: graceMs, now: () => new Date(t) });
  store.keep(c.seedSecrets);
  store.keep(c.shootSecrets);
  return c;
}

describe('ensureCertificates', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');

  it('issues once, then reuses everything while nothing is due, and re-issues each leaf on its own at 80 %', async () => {
    const store = new Store();
    const first = await run(store, t0);
    expect(first.issued).toBe(true);
    const server = store.cert('vpn-seed-server-tls');
    const again = await run(store, t0 + day);
    expect(again.issued).toBe(false);
    expect(again.reissued).toEqual([]);
    expect(store.cert('vpn-seed-server-tls')).toBe(server);
    const due = await run(store, t0 + 8.1 * day); // 80 % of 10 days
    expect(due.reissued.sort()).toEqual(['proxyClient', 'proxyServer', 'seedClient', 'seedServer', 'shootClient'].sort());
    expect(store.cert('vpn-seed-server-tls')).not.toBe(server);
  });

  it('renews only the leaves a renewal request names, once per request', async () => {
    const store = new Store();
    await run(store, t0);
    const server = store.cert('vpn-seed-server-tls');
    const client = store.cert('kube-apiserver-http-proxy-client');
    store.annotate('vpn-certificates', RENEW_ANNOTATION, 'vpn-seed-server-tls@drill-1');
    const r = await run(store, t0 + day);
    expect(r.reissued).toEqual(['seedServer']);
    expect(store.cert('vpn-seed-server-tls')).not.toBe(server);
    expect(store.cert('kube-apiserver-http-proxy-client')).toBe(client); // the kube-apiserver need not restart
    const renewed = store.cert('vpn-seed-server-tls');
    expect((await run(store, t0 + 2 * day)).issued).toBe(false); // the same request is not carried out twice
    expect(store.cert('vpn-seed-server-tls')).toBe(renewed);
  });

  it('rotates the CA on request with both CAs in every bundle, and ends the overlap on request or after the grace', async () => {
    const store = new Store();
    await run(store, t0);
    const oldCa = store.cert('ca-vpn', 'ca.crt');
    store.annotate('ca-vpn', ROTATE_CA_ANNOTATION, 'r1');
    const rotating = await run(store, t0 + day);
    expect(rotating.caCreated).toBe(true);
    expect(rotating.rotating).toBe(true);
    const newCa = store.cert('ca-vpn', 'ca.crt');
    expect(newCa).not.toBe(oldCa);
    // phase 1: every bundle trusts both CAs, every leaf comes from the new one
    expect(store.cert('vpn-seed-server-tls', 'ca.crt')).toBe(`${oldCa}${newCa}`);
    expect(store.cert('vpn-shoot-client', 'ca.crt')).toBe(`${oldCa}${newCa}`);
    const signedBy = (leaf: string, ca: string) => new X509Certificate(leaf).verify(new X509Certificate(ca).publicKey);
    expect(signedBy(store.cert('vpn-seed-server-tls'), newCa)).toBe(true);
    expect(signedBy(store.cert('vpn-shoot-client'), newCa)).toBe(true);
    expect(signedBy(store.cert('vpn-seed-server-tls'), oldCa)).toBe(false);
    // the same request again changes nothing
    expect((await run(store, t0 + day + 1000)).caCreated).toBe(false);
    expect(store.cert('ca-vpn', 'ca.crt')).toBe(newCa);
    // a finish request for another rotation is ignored; the right one ends the overlap now
    store.annotate('ca-vpn', FINISH_CA_ROTATION_ANNOTATION, 'other');
    expect((await run(store, t0 + day + 2000)).rotating).toBe(true);
    store.annotate('ca-vpn', FINISH_CA_ROTATION_ANNOTATION, 'r1');
    const done = await run(store, t0 + day + 3000);
    expect(done.rotating).toBe(false);
    expect(store.cert('vpn-seed-server-tls', 'ca.crt')).toBe(newCa);
    // a second rotation (new token) ends by itself after the grace period
    store.annotate('ca-vpn', ROTATE_CA_ANNOTATION, 'r2');
    expect((await run(store, t0 + 2 * day)).rotating).toBe(true);
    expect((await run(store, t0 + 4.1 * day)).rotating).toBe(false);
  });
});
