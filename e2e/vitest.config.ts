import { projectConfig } from '../vitest.shared.js';

// The e2e suites create network namespaces and run the real processes: one file at a time.
export default projectConfig({ testTimeout: 180_000, fileParallelism: false });
