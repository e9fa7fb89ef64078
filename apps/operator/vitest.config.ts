import { projectConfig } from '../../vitest.shared.js';

// each spec file starts its own kube-apiserver + etcd; one file at a time keeps a 2-core host responsive
export default projectConfig({ testTimeout: 60_000, fileParallelism: false });
