/**
 * The k8s suites run in file-name order (10-reversed, 20-ha, 30-classic, 40-operator): each leaves the
 * test bed as the next expects it (the operator suite enables the operator for good), and vitest's
 * default order (by cached duration) would shuffle them.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export class ByNameSequencer extends BaseSequencer {
  override sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return Promise.resolve([...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId)));
  }
}
