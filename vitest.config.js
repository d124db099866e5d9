import { defineConfig } from "vitest/config";

// Two projects: fast unit tests (no cluster), and the e2e suites that run the
// real CLI in pods on the local cluster (one file at a time: 2 cores).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["__tests__/*.test.js", "__tests__/support/*.test.js"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["__tests__/e2e/**/*.test.js"],
          globalSetup: ["__tests__/e2e/global-setup.js"],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
