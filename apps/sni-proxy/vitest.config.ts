import { projectConfig } from '../../vitest.shared.js';

// one file at a time: hostile.spec.ts measures the event loop under attack and reports the figures
export default projectConfig({ fileParallelism: false });
