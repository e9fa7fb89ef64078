import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { renderCrd, vpnSpecSchema } from './index.js';

const spec = {
  shoot: { name: 'demo', project: 'dev' },
  namespace: 'shoot--dev--demo',
  networks: { services: ['100.64.0.0/13'], pods: ['100.96.0.0/11', 'fd10:96::/32'], nodes: ['10.250.0.0/16'], seedPods: '10.1.0.0/16', ipFamilies: ['IPv4', 'IPv6'] },
  highAvailability: { failureTolerance: 'zone' },
  annotations: { 'alpha.featuregates.shoot.gardener.cloud/reversed-vpn': 'true' },
  endpoint: 'api.demo.dev.internal.example',
  images: { vpnSeedServer: 'r/vpn-seed-server:0.1.0', vpnShoot: 'r/vpn-shoot:0.1.0', pathController: 'r/path-controller:0.1.0' },
};

describe('ShootVpn CRD', () => {
  it('is a valid CustomResourceDefinition with a status subresource and printer columns', () => {
    const crd = renderCrd();
    new CustomResourceDefinition(crd as never).validate();
    const v = (crd.spec as { versions: Array<{ subresources: unknown; additionalPrinterColumns: Array<{ name: string }> }> }).versions[0]!;
    expect(v.subresources).toEqual({ status: {} });
    expect(v.additionalPrinterColumns.map((c) => c.name)).toEqual(['Reversed', 'HA', 'Ready', 'Tunnel', 'Certificates', 'Age']);
  });

  it('its spec schema accepts a real spec and names what is wrong with a bad one', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(vpnSpecSchema);
    expect(validate(spec), JSON.stringify(validate.errors)).toBe(true);
    const bad = { ...spec, highAvailability: { failureTolerance: 'region' }, networks: { ...spec.networks, ipFamilies: [] } };
    expect(validate(bad)).toBe(false);
    const paths = (validate.errors ?? []).map((e) => e.instancePath);
    expect(paths).toEqual(expect.arrayContaining(['/highAvailability/failureTolerance', '/networks/ipFamilies']));
  });

  it('takes an optional shootAccess.kubeconfigSecretRef (name required, key defaults to kubeconfig)', () => {
    const validate = new Ajv({ strict: false, allErrors: true, useDefaults: true }).compile(vpnSpecSchema);
    const withAccess = { ...spec, shootAccess: { kubeconfigSecretRef: { name: 'shoot-kubeconfig' } } };
    expect(validate(withAccess), JSON.stringify(validate.errors)).toBe(true);
    expect(withAccess.shootAccess.kubeconfigSecretRef).toEqual({ name: 'shoot-kubeconfig', key: 'kubeconfig' });
    expect(validate({ ...spec, shootAccess: { kubeconfigSecretRef: { key: 'k' } } })).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toEqual(['/shootAccess/kubeconfigSecretRef']);
  });

  it('takes the seed networks and the mapping settings (issue 12); refuses an unknown mode', () => {
    const validate = new Ajv({ strict: false, allErrors: true }).compile(vpnSpecSchema);
    const mapped = { ...spec, networks: { ...spec.networks, seedNodes: ['10.250.0.0/16'], seedServices: ['100.64.0.0/13'], mapping: { mode: 'always', ipv6: { shootPods: 'fd6d:1:400::/40' } } } };
    expect(validate(mapped), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...mapped, networks: { ...mapped.networks, mapping: { mode: 'sometimes' } } })).toBe(false);
    expect(validate.errors?.map((e) => e.instancePath)).toEqual(['/networks/mapping/mode']);
    expect(validate({ ...mapped, networks: { ...mapped.networks, seedNodes: ['ten'] } })).toBe(false);
  });
});
