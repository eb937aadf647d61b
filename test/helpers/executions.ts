/**
 * @module
 * Reads the execution records that the test Celery app
 * (`test/fixtures/celery/celery_edge_testapp.py`) writes to Redis before each task body runs.
 */
import { createClient } from "redis";

/** Redis list the worker appends one JSON record per task execution to. */
export const EXECUTIONS_KEY = "celery_edge:executions";

/**
 * Python values that have no JSON form arrive tagged:
 * `{"__bytes__": base64}`, `{"__datetime__": iso}`, `{"__date__": iso}`, `{"__time__": iso}`,
 * `{"__decimal__": str}`, `{"__uuid__": str}`, `{"__set__": [...]}`,
 * `{"__int__": str}` (integers beyond ±(2^53-1)), `{"__float__": "nan"|"inf"|"-inf"}`,
 * `{"__repr__": str}` (anything else). Tuples arrive as arrays; non-string dict keys as strings.
 */
export type RecordedValue =
  | null
  | boolean
  | number
  | string
  | RecordedValue[]
  | { [key: string]: RecordedValue };

/** One task execution as the Python worker saw it. */
export interface ExecutionRecord {
  /** Task id (`request.id`). */
  id: string;
  /** Task name, e.g. `tasks.add`. */
  name: string;
  /** Positional arguments as deserialized by the worker. */
  args: RecordedValue[];
  /** Keyword arguments as deserialized by the worker. */
  kwargs: Record<string, RecordedValue>;
  /** Exchange the message was published to (`""` for the default exchange). */
  exchange: string | null;
  /** Routing key the message was published with. */
  routing_key: string | null;
  /** AMQP `priority` property, or null when none was set. */
  priority: number | null;
  /** Whether the broker flagged the delivery as redelivered. */
  redelivered: boolean | null;
  /** `eta` header as the worker received it (ISO 8601), or null. */
  eta: string | null;
  /** `expires` header as the worker received it (ISO 8601), or null. */
  expires: string | null;
  /** `retries` header. */
  retries: number;
  /** Message content type, e.g. `application/json`. */
  content_type: string | null;
  /** Message content encoding, e.g. `utf-8`. */
  content_encoding: string | null;
  /** Unix time in seconds (float) at which the task was about to run. */
  started_at: number;
  /** Worker node name, e.g. `ce-123-1@host`. */
  hostname: string;
  /** 2 when the task name came in the AMQP headers, 1 when it came in the body. */
  protocol: 1 | 2 | null;
  /** Raw message (application) headers. */
  headers: Record<string, RecordedValue> | null;
  /** Transport message properties (without the application headers). */
  properties: Record<string, RecordedValue>;
  root_id: string | null;
  parent_id: string | null;
  group: string | null;
  correlation_id: string | null;
  reply_to: string | null;
  /** Pid of the process that ran the task (a pool child under prefork). */
  pid: number;
}

export type ExecutionPredicate = (record: ExecutionRecord) => boolean;

/** What `waitForExecutions` waits for. */
export type ExecutionCondition =
  /** At least this many records in total; resolves with all records. */
  | number
  /** At least one matching record; resolves with the matching records. */
  | ExecutionPredicate
  /** At least `count` (default 1) records matching `where` (default: all); resolves with the matches. */
  | { where?: ExecutionPredicate; count?: number };

export interface ExecutionLogOptions {
  /** Redis server. @default "redis://127.0.0.1:6379" */
  url?: string;
  /** Redis database; must match `CELERY_EDGE_RECORD_DB` of the worker. @default 15 */
  db?: number;
  /** Redis list key. @default "celery_edge:executions" */
  key?: string;
  /** Poll interval while waiting, in milliseconds. @default 50 */
  pollIntervalMs?: number;
}

function newRedisClient(url: string, database: number) {
  const client = createClient({
    url,
    database,
    // Fail the call instead of retrying forever when Redis is down.
    socket: { connectTimeout: 5_000, reconnectStrategy: false },
  });
  client.on("error", () => {
    // Surfaced through the rejected command; without a listener node-redis would crash the process.
  });
  return client;
}

type Redis = ReturnType<typeof newRedisClient>;

/** Access to the execution records; each call uses its own short-lived connection. */
export class ExecutionLog {
  readonly url: string;
  readonly db: number;
  readonly key: string;
  readonly pollIntervalMs: number;

  constructor(options: ExecutionLogOptions = {}) {
    this.url = options.url ?? "redis://127.0.0.1:6379";
    this.db = options.db ?? 15;
    this.key = options.key ?? EXECUTIONS_KEY;
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
  }

  /** Removes all records. */
  async clear(): Promise<void> {
    await this.withRedis(async (redis) => {
      await redis.del(this.key);
    });
  }

  /** All records, oldest first. */
  async read(): Promise<ExecutionRecord[]> {
    return this.withRedis((redis) => this.readWith(redis));
  }

  /**
   * Polls until `condition` holds and returns the records it selected.
   * Throws after `timeoutMs`, listing the records seen so far.
   */
  async waitFor(condition: ExecutionCondition, timeoutMs = 15_000): Promise<ExecutionRecord[]> {
    const { where, count } = normalise(condition);
    return this.withRedis(async (redis) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const all = await this.readWith(redis);
        const matches = where ? all.filter(where) : all;
        if (matches.length >= count) return matches;
        if (Date.now() >= deadline) {
          const seen = all.map((r) => `${r.name}[${r.id}] via ${r.exchange}/${r.routing_key}`);
          throw new Error(
            `waitForExecutions: wanted ${count} matching record(s) within ${timeoutMs} ms, ` +
              `got ${matches.length}; ${all.length} record(s) in ${this.key}: ` +
              (seen.length ? seen.join(", ") : "(none)"),
          );
        }
        await sleep(this.pollIntervalMs);
      }
    });
  }

  /** Waits for the record of one task id. */
  async waitForTask(taskId: string, timeoutMs = 15_000): Promise<ExecutionRecord> {
    const [record] = await this.waitFor((r) => r.id === taskId, timeoutMs);
    if (!record) throw new Error(`no execution record for task ${taskId}`);
    return record;
  }

  private async readWith(redis: Redis): Promise<ExecutionRecord[]> {
    const raw = await redis.lRange(this.key, 0, -1);
    return raw.map((item) => JSON.parse(item) as ExecutionRecord);
  }

  private async withRedis<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = newRedisClient(this.url, this.db);
    await redis.connect();
    try {
      return await fn(redis);
    } finally {
      redis.destroy();
    }
  }
}

function normalise(condition: ExecutionCondition): { where?: ExecutionPredicate; count: number } {
  if (typeof condition === "number") return { count: condition };
  if (typeof condition === "function") return { where: condition, count: 1 };
  return { where: condition.where, count: condition.count ?? 1 };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
