import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

/**
 * Files of the service-free projects side by side: at least two, because the unit files mostly
 * wait (SQS visibility timeouts) or mostly compute (the fuzz suites), and two overlap them even on
 * a two-core runner, where vitest's default (cores − 1) would run them one at a time.
 */
const parallelFiles = Math.max(2, availableParallelism() - 1);

/**
 * Projects on the real RabbitMQ, Redis and Python Celery: the global setup checks they are there,
 * and, as every file shares one broker, its queues and the execution log, files run one at a time
 * (vitest runs them after the parallel unit and infra files, never beside them).
 */
const services = {
  globalSetup: ["./test/global-setup.ts"],
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
        test: { name: "unit", include: ["test/unit/**/*.test.ts", "test/fixtures/**/*.test.ts"], maxWorkers: parallelFiles },
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
        test: { name: "infra", include: ["test/infra/**/*.test.ts"], maxWorkers: parallelFiles },
      },
    ],
  },
});
