/**
 * A small PKI on WebCrypto (ECDSA P-256): one CA per shoot, server and client certificates for the
 * tunnel and the CONNECT proxy. Keys never leave the process except as PEM that the caller writes.
 */
import 'reflect-metadata';
import { createPrivateKey, webcrypto, randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { chmod, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { PkiInvalidInputError, PkiParseError } from './errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface CertKeyPair {
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  commonName: string;
  usage: 'server' | 'client' | 'both';
  dnsNames?: string[];
  ipAddresses?: string[];
  uris?: string[];
  organization?: string;
  validityDays?: number;
  notBefore?: Date;
}

function subject(cn: string, o?: string): string {
  const esc = (s: string) => s.replace(/([,+"\\<>;=])/g, '\\$1');
  return o ? `CN=${esc(cn)}, O=${esc(o)}` : `CN=${esc(cn)}`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString('hex');
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<webcrypto.CryptoKey> {
  try {
    const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
    return (await webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign'])) ;
  } catch (err) {
    throw new PkiParseError(`cannot parse the CA private key: ${(err as Error).message}`, { cause: err });
  }
}

function validity(opts: { validityDays?: number; notBefore?: Date }) {
  const days = opts.validityDays ?? 365;
  if (!(days > 0)) throw new PkiInvalidInputError(`validityDays must be positive, got ${days}`);
  // Backdate a little so that clocks a few minutes apart still agree.
  const notBefore = opts.notBefore ?? new Date(Date.now() - 5 * 60_000);
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * DAY) };
}

/** A self-signed CA (ECDSA P-256, CA:true, keyCertSign|cRLSign). */
export async function createCa(opts: { commonName: string; validityDays?: number; notBefore?: Date }): Promise<CertKeyPair> {
  if (!opts.commonName) throw new PkiInvalidInputError('the CA needs a common name');
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) ;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject(opts.commonName),
    ...validity({ validityDays: opts.validityDays ?? 3650, ...(opts.notBefore ? { notBefore: opts.notBefore } : {}) }),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

/** A leaf certificate signed by `ca`. */
export async function issueCertificate(ca: CertKeyPair, opts: IssueOptions): Promise<CertKeyPair> {
  if (!opts.commonName) throw new PkiInvalidInputError('a certificate needs a common name');
  for (const ip of opts.ipAddresses ?? []) if (!isIP(ip)) throw new PkiInvalidInputError(`"${ip}" is not an IP address`);
  let caCert: x509.X509Certificate;
  try {
    caCert = new x509.X509Certificate(ca.certPem);
  } catch (err) {
    throw new PkiParseError(`cannot parse the CA certificate: ${(err as Error).message}`, { cause: err });
  }
  const caKey = await importKeyPem(ca.keyPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) ;
  const eku: string[] = [];
  if (opts.usage !== 'client') eku.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.usage !== 'server') eku.push(x509.ExtendedKeyUsage.clientAuth);
  const san: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((v) => ({ type: 'dns' as const, value: v })),
    ...(opts.ipAddresses ?? []).map((v) => ({ type: 'ip' as const, value: v })),
    ...(opts.uris ?? []).map((v) => ({ type: 'url' as const, value: v })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subject(opts.commonName, opts.organization),
    issuer: caCert.subject,
    ...validity(opts),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      ...(san.length ? [new x509.SubjectAlternativeNameExtension(san, false)] : []),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

export interface CertificateInfo {
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  uris: string[];
  notBefore: Date;
  notAfter: Date;
  issuer: string;
  serialNumber: string;
  isCa: boolean;
}

/** Facts about a PEM certificate (Node's own X.509 parser). */
export function certificateInfo(pem: string): CertificateInfo {
  let c: NodeX509;
  try {
    c = new NodeX509(pem);
  } catch (err) {
    throw new PkiParseError(`cannot parse certificate: ${(err as Error).message}`, { cause: err });
  }
  const names = (c.subjectAltName ?? '').split(', ').filter(Boolean);
  const pick = (prefix: string) => names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  return {
    commonName: /(?:^|\n)CN=([^\n]*)/.exec(c.subject)?.[1] ?? '',
    dnsNames: pick('DNS:'),
    ipAddresses: pick('IP Address:'),
    uris: pick('URI:'),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    issuer: /(?:^|\n)CN=([^\n]*)/.exec(c.issuer)?.[1] ?? c.issuer,
    serialNumber: c.serialNumber,
    isCa: c.ca,
  };
}

/**
 * Writes PEM files into `dir` (created 0700). Each file is written to a temporary name and renamed,
 * so a reader never sees half a file. Names ending in `.key` get mode 0600, others 0644.
 */
export async function writePkiFiles(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, content] of Object.entries(files)) {
    if (name.includes('/') || name.startsWith('.')) throw new PkiInvalidInputError(`bad file name ${JSON.stringify(name)}`);
    const mode = name.endsWith('.key') ? 0o600 : 0o644;
    const tmp = join(dir, `.${name}.${process.pid}.tmp`);
    await writeFile(tmp, content, { mode });
    await chmod(tmp, mode);
    await rename(tmp, join(dir, name));
  }
}

/** The URI SAN binding a tunnel client certificate to ONE shoot (its control-plane namespace). */
export function shootIdentityUri(namespace: string): string {
  return `urn:rvpn:shoot:${namespace}`;
}

export interface ShootPki {
  ca: CertKeyPair;
  /** vpn-seed-server: tunnel server and CONNECT proxy server. */
  server: CertKeyPair;
  /** vpn-shoot (non-HA). */
  shootClient: CertKeyPair;
  /** vpn-shoot per HA index. */
  shootClients: CertKeyPair[];
  /** HA kube-apiserver sidecar clients. */
  seedClient: CertKeyPair;
  /** The kube-apiserver's egress client. */
  proxyClient: CertKeyPair;
  /** HA: the path-controller's local CONNECT proxy. */
  proxyServer: CertKeyPair;
}

/** Service DNS names of vpn-seed-server in `namespace` (and of its HA replicas). */
export function seedServerDnsNames(namespace: string, haServers = 0): string[] {
  const bases = ['vpn-seed-server', ...Array.from({ length: haServers }, (_, i) => `vpn-seed-server-${i}`)];
  return bases.flatMap((b) => [b, `${b}.${namespace}`, `${b}.${namespace}.svc`, `${b}.${namespace}.svc.cluster.local`]);
}

/** Everything one shoot needs, as Gardener issues it (CN names are the compatibility contract). */
export async function createShootPki(opts: { namespace: string; haServers?: number; haClients?: number; validityDays?: number; ca?: CertKeyPair; notBefore?: Date }): Promise<ShootPki> {
  if (!opts.namespace) throw new PkiInvalidInputError('createShootPki needs the shoot control-plane namespace');
  const v = { ...(opts.validityDays !== undefined ? { validityDays: opts.validityDays } : {}), ...(opts.notBefore ? { notBefore: opts.notBefore } : {}) };
  const uri = shootIdentityUri(opts.namespace);
  // an existing CA re-issues the leaf certificates (renewal) without touching what trusts it
  const ca = opts.ca ?? (await createCa({ commonName: 'ca-vpn', ...v }));
  const dnsNames = seedServerDnsNames(opts.namespace, opts.haServers ?? 0);
  const [server, shootClient, seedClient, proxyClient, proxyServer, ...shootClients] = await Promise.all([
    issueCertificate(ca, { commonName: 'vpn-seed-server', usage: 'server', dnsNames, uris: [uri], ...v }),
    issueCertificate(ca, { commonName: 'vpn-shoot-client', usage: 'client', uris: [uri], ...v }),
    issueCertificate(ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [uri], ...v }),
    issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy-client', usage: 'client', ...v }),
    issueCertificate(ca, { commonName: 'kube-apiserver-http-proxy', usage: 'server', dnsNames, ipAddresses: ['127.0.0.1'], ...v }),
    ...Array.from({ length: opts.haClients ?? 0 }, (_, i) =>
      issueCertificate(ca, { commonName: `vpn-shoot-client-${i}`, usage: 'client', uris: [uri], ...v })),
  ]);
  return { ca, server: server!, shootClient: shootClient!, seedClient: seedClient!, proxyClient: proxyClient!, proxyServer: proxyServer!, shootClients };
}

/**
 * Whether a certificate is due for renewal: at `fraction` (default 80 %) of its validity, as
 * Gardener renews. The operator re-issues then; the apps pick the new files up without restarting.
 */
export function renewalDue(pem: string, now: Date = new Date(), fraction = 0.8): boolean {
  const { notBefore, notAfter } = certificateInfo(pem);
  const due = notBefore.getTime() + fraction * (notAfter.getTime() - notBefore.getTime());
  return now.getTime() >= due;
}

/**
 * A CA bundle (concatenated PEMs). During a CA rotation every side trusts the old and the new CA,
 * then the leaf certificates are re-issued by the new CA, then the old CA leaves the bundle — and
 * no tunnel has to drop at any step.
 */
export function caBundle(...cas: string[]): string {
  return cas.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
}

/**
 * Writes files the way the kubelet updates a Secret volume: into a fresh timestamped directory, then
 * the `..data` symlink is swapped atomically and each name links through it. A watch on the file
 * itself misses such an update; watch the directory (see watchFiles in @rvpn/observability).
 */
export async function writeSecretVolume(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await writePkiFiles(join(dir, stamp), files);
  const tmpLink = join(dir, `..data_tmp_${process.pid}`);
  await rm(tmpLink, { force: true });
  await symlink(stamp, tmpLink);
  const old = await readlink(join(dir, '..data')).catch(() => undefined);
  await rename(tmpLink, join(dir, '..data'));
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    const target = join('..data', name);
    if ((await readlink(link).catch(() => undefined)) !== target) {
      await rm(link, { force: true });
      await symlink(target, link);
    }
  }
  if (old && old !== stamp) await rm(join(dir, old), { recursive: true, force: true });
}
