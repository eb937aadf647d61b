/**
 * Hostile results through the real result stores (issue #14): payloads PUBLISHed on a task's Redis
 * channel or SET in its key, and replies published to an rpc:// reply queue on the real RabbitMQ,
 * while a producer waits. The producer runs in its own process with a 512 MB heap
 * (test/fixtures/results/hostile-waiter.ts), so the heap bound is real and a crash is an exit code.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const WAITER = fileURLToPath(new URL("../fixtures/results/hostile-waiter.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface Outcome {
  name: string;
  ok: boolean;
  errorName?: string;
  code?: string;
  taskId?: string;
  message?: string;
  ms: number;
  sentinelPendingMeanwhile: boolean;
  sentinelValue?: unknown;
  heapMB: number;
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  outcomes: Map<string, Outcome>;
  done: boolean;
  stderr: string;
}

function runWaiter(): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--max-old-space-size=512", "--import", "tsx", WAITER], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("error", reject);
    child.on("exit", (status, signal) => {
      clearTimeout(timer);
      const outcomes = new Map<string, Outcome>();
      let done = false;
      for (const line of stdout.split("\n").filter(Boolean)) {
        const record = JSON.parse(line) as Outcome & { done?: boolean };
        if (record.done) done = true;
        else outcomes.set(record.name, record);
      }
      resolve({ status, signal, outcomes, done, stderr });
    });
  });
}

const CASES = [
  "json app, PUBLISHed 8-byte negative-LONG4 pickle",
  "json app, SET 700 KB list-copying pickle",
  "pickle app, PUBLISHed 8-byte negative-LONG4 pickle",
  "pickle app, PUBLISHed 700 KB list-copying pickle",
  "pickle app, SET 700 KB list-copying pickle",
  "pickle app, PUBLISHed shared-reference bomb (2^60 values)",
  "yaml app, PUBLISHed 20 KB nested sequence (1st)",
  "yaml app, PUBLISHed 20 KB nested sequence (2nd)",
  "yaml app, SET 20 KB nested sequence",
  "msgpack app, PUBLISHed 100 000 nested arrays",
  "json app, PUBLISHed 100 000 nested arrays",
  "rpc app, a pickle reply (not in resultAccept)",
  "rpc app, a 70 KB zlib reply that inflates to 70 MB",
  "rpc app, a JSON reply 100 000 arrays deep",
];

describe("a producer waiting for results while hostile ones arrive (512 MB heap)", () => {
  let run: Run;

  beforeAll(async () => {
    run = await runWaiter();
    for (const o of run.outcomes.values()) {
      console.info(`[hostile-results] ${o.name}: ${o.errorName ?? "resolved"} after ${o.ms.toFixed(0)} ms, heap ${o.heapMB.toFixed(0)} MB`);
    }
  }, 120_000);

  it("stays up through every case and exits normally", () => {
    // Assert
    expect(run.stderr).not.toMatch(/FATAL ERROR|heap out of memory|Allocation failed/);
    expect({ status: run.status, signal: run.signal, done: run.done }).toEqual({ status: 0, signal: null, done: true });
    expect([...run.outcomes.keys()]).toEqual(CASES);
  });

  it.each(CASES)("%s: get() rejects with a ResultDecodeError naming the task within a second", (name) => {
    // Arrange
    const outcome = run.outcomes.get(name);

    // Assert
    expect(outcome).toMatchObject({ ok: false, errorName: "ResultDecodeError", code: "ERR_RESULT_DECODE" });
    expect(outcome!.taskId).toMatch(/^[0-9a-f-]{36}$/);
    expect(outcome!.message).toContain(outcome!.taskId);
    expect(outcome!.ms).toBeLessThan(1000);
  });

  it.each(CASES)("%s: another wait on the same connection stays pending, then gets its result", (name) => {
    // Arrange
    const outcome = run.outcomes.get(name);

    // Assert: the sentinel's valid result was sent after the hostile one failed, on the same subscriber or consumer.
    expect(outcome).toMatchObject({ sentinelPendingMeanwhile: true, sentinelValue: "sentinel" });
  });
});
