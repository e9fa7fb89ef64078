/**
 * Wires the shoot's kube-apiserver Deployment to the VPN and takes the wiring out again — the I/O
 * around libs/k8s-render's pure functions (apiserverWiring, wireApiserverPatch, unwireApiserverPatch):
 * read the Deployment as the server has it, compute the guarded JSON patch, send it when it is not
 * empty. The pod template carries a checksum of the proxy client Secret, so a renewed certificate
 * restarts kube-apiserver (it reads the egress TLS files only at start). Used by the reconcile and by
 * shoot-setup/shoot-teardown.
 */
import {
  ApiserverWiringError, PROXY_CLIENT_SECRET, apiserverWiring, proxyClientChecksum, unwireApiserverPatch, wireApiserverPatch,
  type K8sObject, type VpnMode, type VpnSpec,
} from '@rvpn/k8s-render';
import type { Kube } from './kube.js';
import { kubeError, statusOf } from './kube.js';
import type { ConditionInput } from './status.js';

export interface WiringOutcome {
  /** The ApiserverWired condition (none when wiring is switched off). */
  condition?: ConditionInput;
  changed: boolean;
  deployment: string;
}

export class ApiserverWirer {
  /** `deployment`: the kube-apiserver Deployment's name in each namespace; '' switches wiring off. */
  constructor(private readonly kube: Kube, private readonly fieldManager: string, private readonly deployment = 'kube-apiserver') {}

  /** The Deployment as the server stores it (raw JSON: the patch's `test` operations compare against it). */
  private async read(namespace: string): Promise<{ spec?: unknown } | undefined> {
    try {
      return (await this.kube.custom.getNamespacedCustomObject({ group: 'apps', version: 'v1', plural: 'deployments', namespace, name: this.deployment })) as { spec?: unknown };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw kubeError(`get Deployment ${namespace}/${this.deployment}`, err);
    }
  }

  async wire(spec: VpnSpec, mode: VpnMode, namespace: string, certs: { seedSecrets: K8sObject[] }): Promise<WiringOutcome> {
    const deployment = this.deployment;
    if (!deployment) return { changed: false, deployment };
    const live = await this.read(namespace);
    if (!live) {
      return { changed: false, deployment, condition: { type: 'ApiserverWired', status: 'False', reason: 'DeploymentNotFound', message: `no Deployment ${namespace}/${deployment} to wire (KUBE_APISERVER_DEPLOYMENT); it is wired when it appears` } };
    }
    const secret = certs.seedSecrets.find((s) => s.metadata.name === PROXY_CLIENT_SECRET);
    const checksum = secret ? proxyClientChecksum(secret.data as Record<string, string>) : undefined;
    let ops: unknown[];
    try {
      ops = wireApiserverPatch(live, apiserverWiring(spec, mode, checksum ? { proxyClientChecksum: checksum } : {}));
    } catch (err) {
      if (!ApiserverWiringError.is(err)) throw err;
      return { changed: false, deployment, condition: { type: 'ApiserverWired', status: 'False', reason: 'NotWirable', message: (err as Error).message } };
    }
    if (ops.length) await this.kube.jsonPatchDeployment({ namespace, name: deployment }, ops, this.fieldManager);
    return {
      changed: ops.length > 0,
      deployment,
      condition: { type: 'ApiserverWired', status: 'True', reason: 'Wired', message: `Deployment ${deployment} uses the VPN (egress selector, proxy client certificate${mode.ha ? ', path-controller' : ''})` },
    };
  }

  /** Takes the wiring out; true when something was removed. */
  async unwire(spec: VpnSpec, mode: VpnMode, namespace: string): Promise<boolean> {
    if (!this.deployment) return false;
    const live = await this.read(namespace);
    if (!live) return false;
    let ops: unknown[];
    try {
      ops = unwireApiserverPatch(live, apiserverWiring(spec, mode));
    } catch (err) {
      if (ApiserverWiringError.is(err)) return false; // not a Deployment we could have wired
      throw err;
    }
    if (!ops.length) return false;
    await this.kube.jsonPatchDeployment({ namespace, name: this.deployment }, ops, this.fieldManager);
    return true;
  }
}
