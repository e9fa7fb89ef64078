import { projectConfig } from '../vitest.shared.js';
import { ByNameSequencer } from './k8s/sequencer.js';

// `pnpm e2e:k8s`: the suites on the test bed (a seed and a shoot cluster of real Kubernetes). One file at
// a time, in name order; the global setup brings the test bed up (or uses a running one) and the
// teardown writes bench-out/k8s-e2e.json and takes down what it brought up.
const base = projectConfig({ testTimeout: 900_000, include: ['k8s/**/*.k8s.ts'], fileParallelism: false });
export default {
  ...base,
  test: { ...base.test, hookTimeout: 1_800_000, globalSetup: ['k8s/global-setup.ts'], sequence: { shuffle: false, sequencer: ByNameSequencer }, bail: 0 },
};
