/**
 * @module
 * Vitest global setup: fail the run at once, with the command that fixes it, when a service
 * the end-to-end tests need is missing, instead of letting every test time out.
 */
import { execFile } from "node:child_process";
import { connect } from "node:net";

const RABBITMQ_START = "rabbitmq-server -detached";
const REDIS_START =
  'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no ' +
  "--dir /var/lib/redis --logfile /var/log/redis/ci.log";
const PYTHON = "/usr/bin/python3";
const PYTHON_MODULES = ["celery", "redis", "msgpack", "yaml"];
const PYTHON_INSTALL =
  "DEBIAN_FRONTEND=noninteractive apt-get install -y python3-celery python3-msgpack python3-yaml python3-redis";

export async function setup(): Promise<void> {
  const problems = (
    await Promise.all([
      probe("RabbitMQ", 5672, RABBITMQ_START),
      probe("Redis", 6379, REDIS_START),
      checkPython(),
    ])
  ).filter((problem): problem is string => problem !== undefined);
  if (problems.length > 0) {
    throw new Error(
      `end-to-end test prerequisites missing (or run .ci/run, which starts and installs them):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
  }
}

function probe(service: string, port: number, start: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const fail = (reason: string): void => {
      socket.destroy();
      resolve(`${service} is not reachable on 127.0.0.1:${port} (${reason}); start it with: ${start}`);
    };
    socket.setTimeout(3_000, () => fail("timed out"));
    socket.once("error", (error) => fail(error.message));
    socket.once("connect", () => {
      socket.destroy();
      resolve(undefined);
    });
  });
}

function checkPython(): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      PYTHON,
      ["-c", `import ${PYTHON_MODULES.join(", ")}`],
      { timeout: 30_000 },
      (error, _stdout, stderr) => {
        if (!error) return resolve(undefined);
        const reason = stderr.trim().split("\n").pop() ?? error.message;
        resolve(`${PYTHON} cannot import ${PYTHON_MODULES.join(", ")} (${reason}); install with: ${PYTHON_INSTALL}`);
      },
    );
  });
}
