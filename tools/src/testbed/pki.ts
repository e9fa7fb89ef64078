/**
 * Certificates of the two test clusters (one CA each, ECDSA P-256 from @rvpn/pki): API server serving,
 * the admin (system:masters), the controllers, each node's kubelet client (system:node:<name>) and
 * kubelet serving certificate with the node IP (trusted by the API server through
 * --kubelet-certificate-authority), the API server's kubelet client (bound to
 * system:kubelet-api-admin), kube-proxy, CoreDNS, and the service-account signing key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueCertificate, type CertKeyPair } from '@rvpn/pki';
import { NODES, PKI_DIR, SHOOT, type NodeName } from './config.js';

export interface ClusterPki {
  ca: CertKeyPair;
  apiserver: CertKeyPair;
  admin: CertKeyPair;
  controllerManager: CertKeyPair;
  scheduler: CertKeyPair;
  kubeletClient: CertKeyPair;
  node: CertKeyPair;
  kubeletServing: CertKeyPair;
  kubeProxy: CertKeyPair;
  coredns: CertKeyPair;
  serviceAccount: { keyPem: string; publicPem: string };
}

export const pkiDir = (cluster: NodeName) => join(PKI_DIR, cluster);

export async function createClusterPki(cluster: NodeName): Promise<ClusterPki> {
  const n = NODES[cluster];
  const ca = await createCa({ commonName: `rvtb-${cluster}-ca` });
  const apiNames = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'];
  const apiIps = [n.kubernetesIp, '127.0.0.1'];
  if (cluster === 'seed') apiIps.push(n.nodeIp, n.wanIp);
  else {
    // the shoot's API server runs in the seed, behind its Service and the seed's entry point
    apiNames.push(SHOOT.apiHost, 'kube-apiserver', `kube-apiserver.${SHOOT.namespace}`, `kube-apiserver.${SHOOT.namespace}.svc`, `kube-apiserver.${SHOOT.namespace}.svc.cluster.local`);
    apiIps.push(SHOOT.advertiseAddress);
  }
  const client = (commonName: string, organization?: string) => issueCertificate(ca, { commonName, usage: 'client', ...(organization ? { organization } : {}) });
  const [apiserver, admin, controllerManager, scheduler, kubeletClient, node, kubeletServing, kubeProxy, coredns] = await Promise.all([
    issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server', dnsNames: apiNames, ipAddresses: apiIps }),
    client('rvtb-admin', 'system:masters'),
    client('system:kube-controller-manager'),
    client('system:kube-scheduler'),
    client('kube-apiserver-kubelet-client'),
    client(`system:node:${n.nodeName}`, 'system:nodes'),
    issueCertificate(ca, { commonName: n.nodeName, usage: 'server', dnsNames: [n.nodeName], ipAddresses: [n.nodeIp] }),
    client('system:kube-proxy'),
    client('rvtb-coredns'),
  ]);
  const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    ca, apiserver: apiserver!, admin: admin!, controllerManager: controllerManager!, scheduler: scheduler!, kubeletClient: kubeletClient!,
    node: node!, kubeletServing: kubeletServing!, kubeProxy: kubeProxy!, coredns: coredns!,
    serviceAccount: { keyPem: sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: sa.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
  };
}

/** Writes every certificate and key as <name>.crt/.key (0600 keys) under PKI_DIR/<cluster>. */
export function writeClusterPki(cluster: NodeName, p: ClusterPki): string {
  const dir = pkiDir(cluster);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const put = (name: string, body: string, mode = 0o644) => writeFileSync(join(dir, name), body, { mode });
  put('ca.crt', p.ca.certPem);
  put('ca.key', p.ca.keyPem, 0o600);
  for (const [name, pair] of Object.entries(p)) {
    if (name === 'ca' || name === 'serviceAccount') continue;
    const { certPem, keyPem } = pair as CertKeyPair;
    put(`${name}.crt`, certPem);
    put(`${name}.key`, keyPem, 0o600);
  }
  put('sa.key', p.serviceAccount.keyPem, 0o600);
  put('sa.pub', p.serviceAccount.publicPem);
  return dir;
}

export interface KubeconfigInput {
  server: string;
  caPem: string;
  user: CertKeyPair;
  /** SNI to send (the seed's entry point routes the shoot's API server by name). */
  tlsServerName?: string;
  name?: string;
}

/** A kubeconfig with everything embedded (YAML is a superset of JSON, so JSON it is). */
export function kubeconfig(k: KubeconfigInput): string {
  const name = k.name ?? 'rvtb';
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return `${JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': name,
    clusters: [{ name, cluster: { server: k.server, 'certificate-authority-data': b64(k.caPem), ...(k.tlsServerName ? { 'tls-server-name': k.tlsServerName } : {}) } }],
    users: [{ name, user: { 'client-certificate-data': b64(k.user.certPem), 'client-key-data': b64(k.user.keyPem) } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
  }, null, 2)}\n`;
}
