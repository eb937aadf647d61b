/**
 * @module
 * Celery's own event receiver (`app.events.Receiver`, what Flower and `celery events` use) run in
 * Python by `test/fixtures/celery/receive_events.py`, capturing `task-sent` events.
 */
import { spawn } from "node:child_process";
import { CELERY_FIXTURE_DIR, PYTHON } from "./celery-worker.js";

/** One `task-sent` event as Celery's Receiver handed it to its handler, and the message it came in. */
export interface CapturedEvent {
  /** The event after the Receiver's own processing (clock replaced, timestamp localized, `local_received`). */
  event: Record<string, unknown>;
  /** Python type name of each field the handler got. */
  types: Record<string, string>;
  /** Python type name of each field as decoded from the wire, before the Receiver touched it. */
  raw: Record<string, string>;
  delivery: { exchange: string; routing_key: string };
  /** AMQP properties as kombu reads them (content_type, content_encoding, delivery_mode, priority, …). */
  properties: Record<string, unknown>;
  headers: Record<string, unknown>;
  content_type: string;
  content_encoding: string;
  /** The body as sent. */
  body: string;
}

/** A task Python itself sends with `task_send_sent_event=True`: `app.signature(name).apply_async(**rest)`. */
export interface PythonCall {
  name: string;
  task_id: string;
  [option: string]: unknown;
}

export interface EventCapture {
  /** Settles once the receiver's queue is bound and consuming: events published after it are seen. */
  ready: Promise<void>;
  /** Every `task-sent` event received, once all awaited ids were seen (rejects on timeout). */
  done: Promise<CapturedEvent[]>;
  /** Ends the receiver early. */
  stop(): void;
}

/**
 * Starts Celery's Receiver on `brokerUrl`. It runs until it has seen the events of every id in
 * `until` (and of `pythonCall`, which it sends itself once ready), or `timeoutS` passes.
 */
export function captureSentEvents(options: { brokerUrl: string; until: readonly string[]; pythonCall?: PythonCall; timeoutS?: number }): EventCapture {
  const args = ["receive_events.py", "--broker", options.brokerUrl, "--until", options.until.join(","), "--timeout", String(options.timeoutS ?? 30)];
  if (options.pythonCall) args.push("--python-call", JSON.stringify(options.pythonCall));
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" };
  delete env.PYTHONHOME;
  const child = spawn(PYTHON, args, { cwd: CELERY_FIXTURE_DIR, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
    if (/^READY$/m.test(out)) markReady();
  });
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const done = new Promise<CapturedEvent[]>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      const events = out
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as CapturedEvent);
      if (code === 0) resolve(events);
      else reject(new Error(`receive_events.py exited ${code}; events seen: ${events.map((e) => e.event.uuid).join(", ") || "none"}\n${err.slice(-4000)}`));
    });
  });
  // A receiver that died before it was ready fails `ready` too, instead of leaving it pending.
  const readyOrDead = Promise.race([ready, done.then(() => undefined)]);
  return { ready: readyOrDead, done, stop: () => child.kill("SIGTERM") };
}
