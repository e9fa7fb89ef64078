/**
 * The certificate Secrets one shoot's VPN needs, in the layout the rendered workloads mount
 * (ca.crt, tls.crt, tls.key; HA shoot clients one pair per pod name). The operator (or `pnpm certs`)
 * issues the material with @rvpn/pki.
 */
import { labels } from './common.js';
import type { VpnMode } from './mode.js';
import { HA_CLIENTS } from './seed.js';
import { SHOOT_NAMESPACE } from './shoot.js';
import type { K8sObject, VpnSpec } from './types.js';

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
  /** HA: the path-controller's links (CN vpn-seed-client) and its local proxy server certificate. */
  seedClient?: Pem;
  proxyServer?: Pem;
}

const secret = (name: string, namespace: string, data: Record<string, string>): K8sObject => ({
  apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels: labels('reversed-vpn-certificates') }, stringData: data,
});
const tls = (ca: string, p: Pem) => ({ 'ca.crt': ca, 'tls.crt': p.certPem, 'tls.key': p.keyPem });

export function renderCertificateSecrets(spec: VpnSpec, mode: VpnMode, m: CertificateMaterial): { seed: K8sObject[]; shoot: K8sObject[] } {
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`certificate material lacks ${what}`);
    return v;
  };
  const ns = spec.namespace;
  const seed = [secret('vpn-seed-server-tls', ns, tls(m.caBundle, m.seedServer)), secret('kube-apiserver-http-proxy-client', ns, tls(m.caBundle, m.proxyClient))];
  if (mode.ha) {
    seed.push(secret('vpn-seed-client', ns, tls(m.caBundle, need(m.seedClient, 'seedClient (HA)'))));
    seed.push(secret('kube-apiserver-http-proxy', ns, tls(m.caBundle, need(m.proxyServer, 'proxyServer (HA)'))));
  }
  let shoot: K8sObject[];
  if (!mode.reversed) shoot = [secret('vpn-shoot-server', SHOOT_NAMESPACE, tls(m.caBundle, need(m.shootServer, 'shootServer (classic)')))];
  else if (mode.ha) {
    const clients = need(m.shootClients, 'shootClients (HA)');
    if (clients.length < HA_CLIENTS) throw new Error(`certificate material has ${clients.length} HA shoot clients, ${HA_CLIENTS} needed`);
    const data: Record<string, string> = { 'ca.crt': m.caBundle };
    clients.slice(0, HA_CLIENTS).forEach((c, i) => {
      data[`vpn-shoot-${i}.crt`] = c.certPem;
      data[`vpn-shoot-${i}.key`] = c.keyPem;
    });
    shoot = [secret('vpn-shoot-client', SHOOT_NAMESPACE, data)];
  } else shoot = [secret('vpn-shoot-client', SHOOT_NAMESPACE, tls(m.caBundle, need(m.shootClient, 'shootClient')))];
  return { seed, shoot };
}
