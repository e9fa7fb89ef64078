// One flat config for the workspace. Layering is enforced, not hoped for:
// apps never import each other, libs never import apps, and scopes stay apart.
import tseslint from 'typescript-eslint';
import nx from '@nx/eslint-plugin';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/native/build/**', '**/node_modules/**', 'bench-out/**', '**/vitest.config.ts', '**/vitest.*.config.ts'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // a variable read by a closure before its single assignment must stay `let` (a `const` there is a TDZ error)
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:lib', 'type:tool'] },
            { sourceTag: 'scope:seed', onlyDependOnLibsWithTags: ['scope:seed', 'scope:shared'] },
            { sourceTag: 'scope:shoot', onlyDependOnLibsWithTags: ['scope:shoot', 'scope:shared'] },
          ],
        },
      ],
    },
  },
);
