#!/usr/bin/env node
/**
 * `pnpm certs --namespace shoot--dev--demo [--ha] [--classic] --out DIR`: issues one shoot's VPN
 * certificates (a fresh per-shoot CA) and writes them as Kubernetes Secrets, ready for
 * `kubectl apply -f`: DIR/seed-secrets.json (into the control-plane namespace) and
 * DIR/shoot-secrets.json (into the shoot's kube-system). A development tool: the CA key is not kept, so
 * nothing can renew them. A cluster install gets its certificates from the operator, or without it
 * from the vpn-seed-server chart's setup job (`operator shoot-setup`, which keeps the CA and renews).
 */
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createShootPki, issueCertificate, seedServerDnsNames, shootIdentityUri } from '@rvpn/pki';
import { renderCertificateSecrets, type VpnSpec } from '@rvpn/k8s-render';

/**
 * Writes `content` with exactly `mode`, also over a file that existed with other modes: writeFile's mode
 * applies only to a file it creates, so the content goes to a fresh temporary file, is chmod'ed (the
 * umask cannot widen or narrow it) and renamed over the target.
 */
function writeFileWithMode(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

const { values } = parseArgs({ options: { namespace: { type: 'string' }, ha: { type: 'boolean', default: false }, classic: { type: 'boolean', default: false }, out: { type: 'string' }, 'validity-days': { type: 'string', default: '365' } } });

async function main(): Promise<number> {
  if (!values.namespace || !values.out || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.namespace)) {
    console.error('usage: pnpm certs --namespace <control-plane namespace> [--ha] [--classic] --out DIR [--validity-days N]');
    return 2;
  }
  if (values.ha && values.classic) {
    console.error('certs: --ha needs the reversed VPN (drop --classic)');
    return 2;
  }
  const validityDays = Number(values['validity-days']);
  const ns = values.namespace;
  const pki = await createShootPki({ namespace: ns, haServers: values.ha ? 2 : 0, haClients: values.ha ? 2 : 0, validityDays });
  const uri = shootIdentityUri(ns);
  const classic = values.classic
    ? {
        seedServer: await issueCertificate(pki.ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [uri], validityDays }),
        shootServer: await issueCertificate(pki.ca, { commonName: 'vpn-shoot', usage: 'server', dnsNames: ['vpn-shoot'], uris: [uri], validityDays }),
      }
    : { seedServer: pki.server };
  const spec = { namespace: ns } as VpnSpec;
  const mode = { reversed: !values.classic, ha: values.ha, reason: 'pnpm certs' };
  const { seed, shoot } = renderCertificateSecrets(spec, mode, {
    caBundle: pki.ca.certPem, proxyClient: pki.proxyClient, shootClient: pki.shootClient, shootClients: pki.shootClients,
    seedClient: pki.seedClient, proxyServer: pki.proxyServer, ...classic,
  });
  mkdirSync(values.out, { recursive: true, mode: 0o700 });
  const list = (items: unknown[]) => `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2)}\n`;
  // both lists carry private keys: 0600 (certificates alone would be 0644; this tool writes none)
  writeFileWithMode(join(values.out, 'seed-secrets.json'), list(seed), 0o600);
  writeFileWithMode(join(values.out, 'shoot-secrets.json'), list(shoot), 0o600);
  console.log(`wrote ${seed.length} Secret(s) for ${ns} to ${join(values.out, 'seed-secrets.json')} and ${shoot.length} for the shoot's kube-system to ${join(values.out, 'shoot-secrets.json')}`);
  console.log(`server names: ${seedServerDnsNames(ns, values.ha ? 2 : 0).slice(0, 2).join(', ')}, …; CA valid ${validityDays} days (renew at 80 %)`);
  return 0;
}

main().then((c) => process.exit(c), (err) => {
  console.error(`certs failed: ${(err as Error).message}`);
  process.exit(1);
});
