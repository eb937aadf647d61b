/**
 * @module
 * Starts a real Python Celery worker running `test/fixtures/celery/celery_edge_testapp.py`
 * and stops it again. The worker is only handed back once it logged "ready.", which Celery
 * does after it has issued `basic.consume` on every queue it serves.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname as machineName } from "node:os";
import { fileURLToPath } from "node:url";

export const PYTHON = "/usr/bin/python3";
export const CELERY_FIXTURE_DIR = fileURLToPath(new URL("../fixtures/celery/", import.meta.url));

/** Every queue the test app declares (with the default `CELERY_EDGE_DEFAULT_QUEUE`). */
export const ALL_QUEUES = ["ce.default", "ce.video", "ce.image", "ce.priority"] as const;

export type WorkerPool = "solo" | "prefork" | "threads";

export interface CeleryWorkerOptions {
  /** Queues to consume (`CELERY_EDGE_QUEUES`); all queues are declared regardless. @default all four */
  queues?: string[];
  /** Pool size (`-c`). @default 1 */
  concurrency?: number;
  /** Extra environment for the worker, applied last. */
  env?: Record<string, string>;
  /** `CELERY_RESULT_BACKEND`, e.g. `rpc://`. @default "redis://127.0.0.1:6379/0" */
  resultBackend?: string;
  /** `CELERY_RESULT_SERIALIZER`. @default "json" */
  resultSerializer?: string;
  /** Node name (`-n`); must be unique among running workers. @default "ce-<pid>-<n>-<random>@<host>" */
  hostname?: string;
  /** Execution pool (`-P`). @default "prefork" */
  pool?: WorkerPool;
  /** How long to wait for "ready.", in milliseconds. @default 60_000 */
  readyTimeoutMs?: number;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CeleryWorker {
  /** Node name the worker runs as; execution records carry it as `hostname`. */
  readonly hostname: string;
  readonly pid: number;
  /** Milliseconds from spawn to "ready.". */
  readonly startupMs: number;
  /** Settles when the worker process has exited. */
  readonly exited: Promise<WorkerExit>;
  /** Everything the worker wrote to stdout and stderr so far (the last 4 MiB). */
  logs(): string;
  isRunning(): boolean;
  /**
   * Warm shutdown (SIGTERM, Celery lets running tasks finish); SIGKILL to the whole process
   * group after `timeoutMs`. Safe to call more than once.
   */
  stop(timeoutMs?: number): Promise<WorkerExit>;
}

const MAX_LOG_CHARS = 4 * 1024 * 1024;
const live = new Set<ChildProcess>();
let workerCount = 0;
let exitHookInstalled = false;

/** Starts a Celery worker for the test app and resolves once it is consuming. */
export async function startCeleryWorker(options: CeleryWorkerOptions = {}): Promise<CeleryWorker> {
  const hostname =
    options.hostname ??
    `ce-${process.pid}-${++workerCount}-${randomBytes(3).toString("hex")}@${machineName()}`;
  const pool = options.pool ?? "prefork";
  const concurrency = options.concurrency ?? 1;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    C_FORCE_ROOT: "1",
    PYTHONPATH: CELERY_FIXTURE_DIR,
    PYTHONUNBUFFERED: "1",
    PYTHONDONTWRITEBYTECODE: "1",
    CELERY_EDGE_PARENT_PID: String(process.pid),
  };
  delete env.PYTHONHOME;
  // The celery CLI reads these as --broker/--result-backend: a relay harness in the same process
  // sets BROKER_URL for the relay, which must not redirect the worker.
  delete env.BROKER_URL;
  delete env.RESULT_BACKEND;
  if (options.queues) env.CELERY_EDGE_QUEUES = options.queues.join(",");
  if (options.resultBackend) env.CELERY_RESULT_BACKEND = options.resultBackend;
  if (options.resultSerializer) env.CELERY_RESULT_SERIALIZER = options.resultSerializer;
  Object.assign(env, options.env);

  const args = [
    "-m", "celery", "-A", "celery_edge_testapp", "worker",
    "-l", "info",
    "-n", hostname,
    "-P", pool,
    "-c", String(concurrency),
    "--without-gossip", "--without-mingle", "--without-heartbeat",
  ];

  installExitHook();
  const startedAt = Date.now();
  // Own process group, so stop() can take the pool children down with the main process.
  const child = spawn(PYTHON, args, {
    cwd: CELERY_FIXTURE_DIR,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);

  let log = "";
  const append = (text: string): void => {
    log += text;
    if (log.length > MAX_LOG_CHARS) log = log.slice(log.length - MAX_LOG_CHARS);
  };

  const exited = new Promise<WorkerExit>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });

  const ready = new Promise<void>((resolve, reject) => {
    const readyLine = `${hostname} ready.`;
    let partial = "";
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString("utf8");
      append(text);
      partial += text;
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      if (lines.some((line) => line.includes(readyLine))) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (error) => reject(new Error(`could not spawn ${PYTHON}: ${error.message}`, { cause: error })));
    void exited.then(({ code, signal }) =>
      reject(new Error(`celery worker ${hostname} exited before ready (code ${code}, signal ${signal})\n${log}`)),
    );
    setTimeout(
      () => reject(new Error(`celery worker ${hostname} not ready after ${readyTimeoutMs} ms\n${log}`)),
      readyTimeoutMs,
    ).unref();
  });

  const stop = async (timeoutMs = 15_000): Promise<WorkerExit> => {
    if (child.exitCode === null && child.signalCode === null) {
      signalProcess(child.pid, "SIGTERM");
      const timer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(timer);
    }
    // Pool children that outlived the main process.
    signalGroup(child.pid, "SIGKILL");
    return exited;
  };

  try {
    await ready;
  } catch (error) {
    await stop(2_000);
    throw error;
  }

  const pid = child.pid;
  if (pid === undefined) throw new Error(`celery worker ${hostname} has no pid`);
  return {
    hostname,
    pid,
    startupMs: Date.now() - startedAt,
    exited,
    logs: () => log,
    isRunning: () => child.exitCode === null && child.signalCode === null,
    stop,
  };
}

function signalProcess(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  // A negative pid addresses the process group the detached worker leads.
  if (pid !== undefined) signalProcess(-pid, signal);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test file that forgot stop() must not leave a worker consuming the next file's messages.
  process.once("exit", () => {
    for (const child of live) signalGroup(child.pid, "SIGKILL");
  });
}
