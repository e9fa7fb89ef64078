/**
 * The certificate Secrets one shoot's VPN needs, in the layout the rendered workloads mount
 * (ca.crt, tls.crt, tls.key; HA shoot clients one pair per pod name). The operator (or its one-shot
 * `shoot-setup` mode the chart runs, or `pnpm certs`) issues the material with @rvpn/pki.
 * The Secrets carry `stringData`; the operator's applier sends them as `data` (so a key that is no
 * longer rendered disappears instead of lingering).
 */
import { objectLabels } from './common.js';
import type { VpnMode } from './mode.js';
import { HA_CLIENTS, PROXY_CLIENT_SECRET, SEED_PROXY_TLS_SECRET, SEED_SERVER, SEED_SERVER_TLS_SECRET } from './seed.js';
import { SHOOT_NAMESPACE, VPN_SHOOT, shootSecretName } from './shoot.js';
import type { K8sObject, ObjectMeta, VpnSpec } from './types.js';
import { PROXY_SERVER_SECRET, SEED_CLIENT_SECRET } from './wiring.js';

export interface Pem {
  certPem: string;
  keyPem: string;
}

export interface CertificateMaterial {
  caBundle: string;
  /** vpn-seed-server's tunnel server certificate (reversed) — or its client certificate (classic). */
  seedServer: Pem;
  /** The kube-apiserver's egress client (CN kube-apiserver-http-proxy-client). */
  proxyClient: Pem;
  /** Non-HA shoot client (CN vpn-shoot-client). */
  shootClient?: Pem;
  /** HA shoot clients by index (CN vpn-shoot-client-<i>). */
  shootClients?: Pem[];
  /** Classic: vpn-shoot's tunnel server certificate (CN vpn-shoot). */
  shootServer?: Pem;
  /** HA: the path-controller's links (CN vpn-seed-client). */
  seedClient?: Pem;
  /**
   * The kube-apiserver's egress proxy server certificate (CN kube-apiserver-http-proxy, the seed
   * server's DNS names and 127.0.0.1; @rvpn/pki's createShootPki issues it as `proxyServer`):
   * HA: the path-controller's local proxy (Secret kube-apiserver-http-proxy);
   * classic: vpn-seed-server's 9443 proxy (Secret vpn-seed-server-proxy-tls), whose tunnel
   * certificate is a client one there.
   */
  proxyServer?: Pem;
}

const tls = (ca: string, p: Pem) => ({ 'ca.crt': ca, 'tls.crt': p.certPem, 'tls.key': p.keyPem });

/** `options.shootNamespace`: where vpn-shoot runs in the shoot (default kube-system). */
export function renderCertificateSecrets(spec: VpnSpec, mode: VpnMode, m: CertificateMaterial, options: ObjectMeta & { shootNamespace?: string } = {}): { seed: K8sObject[]; shoot: K8sObject[] } {
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`certificate material lacks ${what}`);
    return v;
  };
  const secret = (app: string, name: string, namespace: string, data: Record<string, string>): K8sObject => ({
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
    metadata: { name, namespace, labels: objectLabels(app, 'certificates', options) },
    stringData: data,
  });
  const ns = spec.namespace;
  const seedSecret = (name: string, p: Pem) => secret(SEED_SERVER, name, ns, tls(m.caBundle, p));
  const seed = [seedSecret(SEED_SERVER_TLS_SECRET, m.seedServer), seedSecret(PROXY_CLIENT_SECRET, m.proxyClient)];
  if (mode.ha) {
    seed.push(seedSecret(SEED_CLIENT_SECRET, need(m.seedClient, 'seedClient (HA)')));
    seed.push(seedSecret(PROXY_SERVER_SECRET, need(m.proxyServer, 'proxyServer (HA)')));
  }
  if (!mode.reversed) seed.push(seedSecret(SEED_PROXY_TLS_SECRET, need(m.proxyServer, 'proxyServer (classic: the 9443 proxy)')));
  const shootNs = options.shootNamespace ?? SHOOT_NAMESPACE;
  const name = shootSecretName(mode);
  let shoot: K8sObject[];
  if (!mode.reversed) shoot = [secret(VPN_SHOOT, name, shootNs, tls(m.caBundle, need(m.shootServer, 'shootServer (classic)')))];
  else if (mode.ha) {
    const clients = need(m.shootClients, 'shootClients (HA)');
    if (clients.length < HA_CLIENTS) throw new Error(`certificate material has ${clients.length} HA shoot clients, ${HA_CLIENTS} needed`);
    const data: Record<string, string> = { 'ca.crt': m.caBundle };
    clients.slice(0, HA_CLIENTS).forEach((c, i) => {
      data[`vpn-shoot-${i}.crt`] = c.certPem;
      data[`vpn-shoot-${i}.key`] = c.keyPem;
    });
    shoot = [secret(VPN_SHOOT, name, shootNs, data)];
  } else shoot = [secret(VPN_SHOOT, name, shootNs, tls(m.caBundle, need(m.shootClient, 'shootClient')))];
  return { seed, shoot };
}
