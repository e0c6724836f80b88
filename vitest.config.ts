import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Network tests start their own servers on port 0; a few files at a time keep the 2-core
    // machine responsive.
    maxWorkers: 2,
  },
});
