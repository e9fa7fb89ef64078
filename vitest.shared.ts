// Shared vitest settings: tests import workspace libraries from source through the
// "@rvpn/source" export condition, so a unit test never needs a TypeScript build first.
import { defineConfig } from 'vitest/config';

export function projectConfig(overrides: { testTimeout?: number; include?: string[]; fileParallelism?: boolean } = {}) {
  return defineConfig({
    resolve: { conditions: ['@rvpn/source', 'import', 'node', 'default'] },
    ssr: { resolve: { conditions: ['@rvpn/source', 'import', 'node', 'default'], externalConditions: ['@rvpn/source'] } },
    test: {
      include: overrides.include ?? ['src/**/*.spec.ts'],
      testTimeout: overrides.testTimeout ?? 20_000,
      hookTimeout: 60_000,
      fileParallelism: overrides.fileParallelism ?? true,
      pool: 'forks',
      reporters: ['default'],
    },
  });
}
