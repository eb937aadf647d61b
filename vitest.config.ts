import { defineConfig } from "vitest/config";

/** Real RabbitMQ, Redis and Python Celery: one broker and one execution log shared by every file. */
const services = {
  globalSetup: ["./test/global-setup.ts"],
  // Every file here shares one broker, the same queues and the execution log: one file at a time
  // (vitest runs these after the parallel unit and infra files, never beside them).
  fileParallelism: false,
};

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        // No RabbitMQ, Redis or Python: in-process emulators (fauxqs, the Scheduler stand-in) only.
        test: { name: "unit", include: ["test/unit/**/*.test.ts", "test/fixtures/**/*.test.ts"] },
      },
      {
        extends: true,
        test: { name: "integration", include: ["test/integration/**/*.test.ts", "test/e2e/**/*.test.ts", "test/reliability/**/*.test.ts"], ...services },
      },
      {
        extends: true,
        // The examples and the packed package deliver to a real worker through the shared broker.
        test: { name: "edge", include: ["test/edge/**/*.test.ts"], ...services },
      },
      {
        extends: true,
        test: { name: "infra", include: ["test/infra/**/*.test.ts"] },
      },
    ],
  },
});
