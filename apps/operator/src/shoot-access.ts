/**
 * Access to a shoot cluster from `spec.shootAccess.kubeconfigSecretRef`: a Secret in the ShootVpn's
 * namespace holding a kubeconfig. Only self-contained credentials are accepted — inline CA,
 * client certificate/key or a token. A kubeconfig naming files, an exec plugin, an auth provider or a
 * proxy is refused: it would make the operator read its own files (its ServiceAccount token), run a
 * command, or send credentials elsewhere, on behalf of whoever can write that Secret.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError } from '@rvpn/k8s-render';
import { Applier, sha256 } from './applier.js';
import { Kube, kubeConfigFromString, type LiveObject } from './kube.js';

export interface ShootAccess {
  kubeconfigSecretRef: { name: string; key?: string };
}

/** Why the shoot could not be reached (the ShootApplied condition's reason). */
export type ShootAccessReason = 'KubeconfigSecretMissing' | 'KubeconfigInvalid' | 'ShootUnreachable';

export class ShootAccessProblem extends Error {
  constructor(readonly reason: ShootAccessReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Refuses kubeconfigs whose current context needs files, commands or a proxy. */
export function checkShootKubeconfig(kc: KubeConfig): void {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const bad: string[] = [];
  if (!cluster?.server?.startsWith('https://')) bad.push('the cluster server must be an https:// URL');
  if (cluster?.caFile) bad.push('certificate-authority (a file): use certificate-authority-data');
  if (cluster?.proxyUrl) bad.push('proxy-url');
  if (user?.certFile || user?.keyFile) bad.push('client-certificate/client-key (files): use the -data fields');
  if (user?.exec) bad.push('exec (a command)');
  if (user?.authProvider) bad.push('auth-provider (including a token file)');
  if (bad.length) throw new KubeApiError(`the shoot kubeconfig is not self-contained: ${bad.join('; ')}`, { details: { problems: bad } });
}

export interface ShootClient {
  kube: Kube;
  applier: Applier;
}

/** Shoot clients per ShootVpn, rebuilt when the kubeconfig in the Secret changes. */
export class ShootClients {
  private readonly cache = new Map<string, { hash: string; client: ShootClient }>();

  constructor(private readonly seed: Kube, private readonly fieldManager: string) {}

  async get(namespace: string, owner: string, access: ShootAccess): Promise<ShootClient> {
    const ref = access.kubeconfigSecretRef;
    const key = ref.key || 'kubeconfig';
    const secret = await this.seed.get<LiveObject & { data?: Record<string, string> }>({ apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name: ref.name } });
    if (!secret) throw new ShootAccessProblem('KubeconfigSecretMissing', `Secret ${namespace}/${ref.name} (spec.shootAccess.kubeconfigSecretRef) does not exist`);
    const b64 = secret.data?.[key];
    if (!b64) throw new ShootAccessProblem('KubeconfigSecretMissing', `Secret ${namespace}/${ref.name} has no key ${JSON.stringify(key)}`);
    const text = Buffer.from(b64, 'base64').toString('utf8');
    const hash = sha256(text);
    const cacheKey = `${namespace}/${owner}`;
    const hit = this.cache.get(cacheKey);
    if (hit?.hash === hash) return hit.client;
    let kc: KubeConfig;
    try {
      kc = kubeConfigFromString(text);
      checkShootKubeconfig(kc);
    } catch (err) {
      throw new ShootAccessProblem('KubeconfigInvalid', `Secret ${namespace}/${ref.name} key ${key}: ${(err as Error).message}`, { cause: err });
    }
    const kube = new Kube(kc);
    const client = { kube, applier: new Applier(kube, this.fieldManager) };
    this.cache.set(cacheKey, { hash, client });
    return client;
  }

  forget(namespace: string, owner: string): void {
    this.cache.delete(`${namespace}/${owner}`);
  }
}
