/**
 * @rvpn/pki: per-shoot CA and certificates (ECDSA P-256) for the tunnel and the CONNECT proxy.
 *
 *   import { createShootPki, writePkiFiles } from '@rvpn/pki';
 *   const pki = await createShootPki({ namespace: 'shoot--dev--a' });
 *   await writePkiFiles('/etc/vpn', { 'ca.crt': pki.ca.certPem, 'tls.crt': pki.server.certPem, 'tls.key': pki.server.keyPem });
 */
export { createCa, issueCertificate, certificateInfo, writePkiFiles, writeSecretVolume, renewalDue, caBundle, shootIdentityUri, createShootPki, seedServerDnsNames } from './pki.js';
export type { CertKeyPair, IssueOptions, CertificateInfo, ShootPki } from './pki.js';
export { PkiInvalidInputError, PkiParseError } from './errors.js';
