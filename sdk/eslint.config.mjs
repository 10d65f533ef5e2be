// ESLint flat config for the SDK (run by `make lint`): typescript-eslint's
// type-aware recommended rules, because the bugs worth a linter here are
// floating promises and unsafe `any` flows, which need the type checker.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // Build output and the generated wire types (regenerated, never edited).
  { ignores: ['dist/', '.build/', 'node_modules/', 'src/generated/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      // tsconfig.test.json covers src/, test/ and demo/ (tsconfig.json only src/).
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test tracks the promises describe/it return; awaiting them is not the idiom.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] }] },
      ],
      // `const { dropped, ...rest } = o` is how an object loses a key; `_x` marks a deliberately unused binding.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { ignoreRestSiblings: true, argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Fakes of async interfaces (fetch, a time source) are written `async` to match the signature.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    // Build scripts and this file run on Node.
    files: ['**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
);
