/**
 * sqsBroker without a network: kombu's queue-name mapping (expected names computed with kombu
 * 5.2.4's own CHARS_REPLACE_TABLE), what is refused before anything is sent, and how one
 * SendMessageBatch answer becomes one outcome per task. SQS itself is a `fetch` that answers in
 * SQS's JSON protocol (the e2e test, test/e2e/sqs-broker.test.ts, runs against an emulator and
 * a real worker).
 */
import { describe, expect, it } from "vitest";
import { Celery, type CeleryError } from "../../sdk/index.js";
import { batchesOf, sqsBroker } from "../../sdk/transports/sqs-broker.js";
import { canonicalQueueName, sqsEntityName } from "../../sdk/transports/sqs-broker-wire.js";
import { SQS_MAX_MESSAGE_BYTES } from "../../sdk/wire/limits.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/sqsb-default";

/** An SQS endpoint that answers each call with `answer(action, payload)` and keeps the calls. */
function fakeSqs(answer: (action: string, payload: any) => { status?: number; json: unknown }) {
  const calls: Array<{ action: string; payload: any }> = [];
  const fetch: typeof globalThis.fetch = async (_url, init) => {
    const action = new Headers(init!.headers).get("x-amz-target")!.split(".")[1]!;
    const payload = JSON.parse(String(init!.body));
    calls.push({ action, payload });
    const a = answer(action, payload);
    return new Response(JSON.stringify(a.json), { status: a.status ?? 200, headers: { "content-type": "application/x-amz-json-1.0" } });
  };
  return { fetch, calls };
}

const allTaken = (_: string, p: any) => ({ json: { Successful: p.Entries.map((e: any, i: number) => ({ Id: e.Id, MessageId: `m-${i}` })), Failed: [] } });

function appWith(fetch: typeof globalThis.fetch, options: Partial<Parameters<typeof sqsBroker>[0]> = {}): Celery {
  return new Celery({
    broker: sqsBroker({
      region: "eu-west-1",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      predefinedQueues: { "sqsb-default": { url: QUEUE_URL }, "sqsb-jobs.fifo": QUEUE_URL.replace("sqsb-default", "sqsb-jobs.fifo") },
      fetch,
      ...options,
    }),
    defaultQueue: "sqsb.default",
  });
}

describe("queue names as kombu maps them", () => {
  // Computed with kombu.transport.SQS.CHARS_REPLACE_TABLE and Channel.entity_name (kombu 5.2.4).
  const KOMBU: Record<string, string> = {
    celery: "celery",
    "ce.default": "ce-default",
    "a:b/c@d!e#f": "a_b_c_d_e_f",
    "my-queue_x": "my-queue_x",
    "jobs.high.fifo": "jobs-high.fifo",
    "q.fifo.x": "q-fifo-x",
    "a~b{c}|d\\e\"f'g": "a_b_c__d_e_f_g",
    "x.fifo.fifo": "x-fifo.fifo",
    "caf\u00e9 q": "caf\u00e9 q",
  };
  for (const [name, sqs] of Object.entries(KOMBU)) {
    it(`maps ${JSON.stringify(name)} to ${JSON.stringify(sqs)}`, () => {
      expect(sqsEntityName(name)).toBe(sqs);
    });
  }

  it("puts queue_name_prefix in front before mapping", () => {
    expect(canonicalQueueName("dev.", "ce.default")).toBe("dev-ce-default");
  });

  it("looks a queue up by its mapped, prefixed name and never creates one", async () => {
    const sqs = fakeSqs((action, p) =>
      action === "GetQueueUrl" ? { json: { QueueUrl: `https://example/123/${p.QueueName}` } } : allTaken(action, p),
    );
    const app = appWith(sqs.fetch, { predefinedQueues: undefined, queueNamePrefix: "dev." });
    await app.sendTask("tasks.add", { args: [1, 2] });
    await app.sendTask("tasks.add", { args: [3, 4] });
    expect(sqs.calls.map((c) => c.action)).toEqual(["GetQueueUrl", "SendMessageBatch", "SendMessageBatch"]);
    expect(sqs.calls[0]!.payload).toEqual({ QueueName: "dev-sqsb-default" });
    expect(sqs.calls[1]!.payload.QueueUrl).toBe("https://example/123/dev-sqsb-default");
  });

  it("refuses a queue SQS does not have as ERR_UNROUTABLE", async () => {
    const sqs = fakeSqs(() => ({ status: 400, json: { __type: "com.amazonaws.sqs#QueueDoesNotExist", message: "The specified queue does not exist." } }));
    const app = appWith(sqs.fetch, { predefinedQueues: undefined });
    const error = (await app.sendTask("tasks.add", { args: [1, 2] }).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_UNROUTABLE");
    expect(sqs.calls.map((c) => c.action)).toEqual(["GetQueueUrl"]);
  });

  it("looks a missing queue up again on the next call: a worker may have created it since", async () => {
    let exists = false;
    const sqs = fakeSqs((action, p) =>
      action !== "GetQueueUrl"
        ? allTaken(action, p)
        : exists
          ? { json: { QueueUrl: `https://example/123/${p.QueueName}` } }
          : { status: 400, json: { __type: "com.amazonaws.sqs#QueueDoesNotExist" } },
    );
    const app = appWith(sqs.fetch, { predefinedQueues: undefined });
    await expect(app.sendTask("tasks.add", {})).rejects.toMatchObject({ code: "ERR_UNROUTABLE" });
    exists = true;
    await app.sendTask("tasks.add", {});
    expect(sqs.calls.map((c) => c.action)).toEqual(["GetQueueUrl", "GetQueueUrl", "SendMessageBatch"]);
  });
});

describe("refused before sending", () => {
  it("a queue not in predefinedQueues", async () => {
    const sqs = fakeSqs(allTaken);
    const error = (await appWith(sqs.fetch).sendTask("tasks.add", { queue: "other" }).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_UNROUTABLE");
    expect(sqs.calls).toEqual([]);
  });

  it("a routing key whose queue the workers would not know when acking (kombu 5.2.4 runs the task, then dies)", async () => {
    const sqs = fakeSqs(allTaken);
    // The queue is predefined, but a worker acks through `canonical_queue_name(routing_key)`.
    const app = new Celery({
      broker: sqsBroker({ region: "eu-west-1", credentials: { accessKeyId: "a", secretAccessKey: "b" }, predefinedQueues: { "sqsb-default": QUEUE_URL }, fetch: sqs.fetch }),
      defaultQueue: "sqsb.default",
      queues: { "sqsb.default": { exchange: "work", exchangeType: "direct" as const, routingKey: "jobs" } },
    });
    const error = (await app.sendTask("tasks.add", { exchange: "work", routingKey: "jobs" }).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_UNROUTABLE");
    expect(error.message).toContain('"jobs"');
    expect(sqs.calls).toEqual([]);
  });

  it("a topic exchange, whose bindings only the workers hold", async () => {
    const sqs = fakeSqs(allTaken);
    const error = (await appWith(sqs.fetch).sendTask("tasks.add", { exchange: "events", exchangeType: "topic", routingKey: "video.x" } as never).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_UNROUTABLE");
    expect(sqs.calls).toEqual([]);
  });

  it("a message over SQS's size limit, as PayloadTooLargeError, while its batch-mates go", async () => {
    const sqs = fakeSqs(allTaken);
    // Base64 twice makes 3 bytes 5.3: 600 KB of args is well over 1 MiB on the wire.
    const outcomes = await appWith(sqs.fetch).sendMany([
      { task: "tasks.echo", args: ["x".repeat(600_000)] },
      { task: "tasks.echo", args: ["small"] },
    ]).then(
      () => null,
      (e: { outcomes?: Array<{ ok: boolean; error?: CeleryError }> }) => e.outcomes!,
    );
    expect(outcomes![0]!.ok).toBe(false);
    expect(outcomes![0]!.error!.code).toBe("ERR_PAYLOAD_TOO_LARGE");
    expect(outcomes![1]!.ok).toBe(true);
    expect(sqs.calls).toHaveLength(1);
    expect(sqs.calls[0]!.payload.Entries).toHaveLength(1);
    expect(sqs.calls[0]!.payload.Entries[0].MessageBody.length).toBeLessThan(SQS_MAX_MESSAGE_BYTES);
  });

  it("a FIFO message whose group id SQS would refuse", async () => {
    const sqs = fakeSqs(allTaken);
    const app = appWith(sqs.fetch, { fifo: { messageGroupId: "has space" } });
    const error = (await app.sendTask("tasks.add", { queue: "sqsb-jobs.fifo" }).catch((e: unknown) => e)) as CeleryError;
    expect(error.code).toBe("ERR_INVALID_OPTION");
    expect(sqs.calls).toEqual([]);
  });

  it("a FIFO group function that throws, as ERR_INVALID_OPTION for that task only", async () => {
    const sqs = fakeSqs(allTaken);
    const app = appWith(sqs.fetch, {
      fifo: {
        messageGroupId: (m) => {
          if (m.meta.name === "tasks.bad") throw new Error("no group for this one");
          return "g1";
        },
      },
    });
    const error = (await app
      .sendMany([{ task: "tasks.bad", queue: "sqsb-jobs.fifo" }, { task: "tasks.good", queue: "sqsb-jobs.fifo" }])
      .catch((e: unknown) => e)) as { outcomes: Array<{ ok: boolean; error?: CeleryError }> };
    expect(error.outcomes.map((o) => o.ok)).toEqual([false, true]);
    expect(error.outcomes[0]!.error!.code).toBe("ERR_INVALID_OPTION");
    expect(sqs.calls[0]!.payload.Entries).toHaveLength(1);
    expect(sqs.calls[0]!.payload.Entries[0].MessageGroupId).toBe("g1");
  });

  it("a maxDelaySeconds that is not a number of seconds, at construction", () => {
    expect(() => sqsBroker({ region: "eu-west-1", maxDelaySeconds: Number.NaN })).toThrow(expect.objectContaining({ code: "ERR_INVALID_OPTION" }));
    expect(() => sqsBroker({ region: "eu-west-1", maxDelaySeconds: -1 })).toThrow(/maxDelaySeconds/);
  });

  it("predefinedQueues that mix a FIFO name with a standard URL, at construction", () => {
    expect(() => sqsBroker({ region: "eu-west-1", predefinedQueues: { "a.fifo": QUEUE_URL } })).toThrow(/both FIFO or neither/);
  });
});

describe("delays", () => {
  it("sends a countdown within 15 minutes as DelaySeconds, a further one with SQS's longest, and none to a FIFO queue", async () => {
    const sqs = fakeSqs(allTaken);
    const app = appWith(sqs.fetch);
    await app.sendTask("tasks.add", { countdown: 120.9 });
    await app.sendTask("tasks.add", { countdown: 7200 });
    await app.sendTask("tasks.add", { countdown: 120, queue: "sqsb-jobs.fifo" });
    await app.sendTask("tasks.add", {});
    const delays = sqs.calls.map((c) => c.payload.Entries[0].DelaySeconds);
    expect(delays[0]).toBeGreaterThanOrEqual(119);
    expect(delays[0]).toBeLessThanOrEqual(120);
    expect(delays.slice(1)).toEqual([900, undefined, undefined]);
  });
});

describe("batches", () => {
  it("splits at ten entries and at SQS's total size", () => {
    const sizes = batchesOf(Array.from({ length: 25 }, () => ({ size: 1 }))).map((b) => b.length);
    expect(sizes).toEqual([10, 10, 5]);
    const big = SQS_MAX_MESSAGE_BYTES / 2;
    expect(batchesOf([{ size: big }, { size: big }, { size: 1 }]).map((b) => b.length)).toEqual([2, 1]);
  });

  it("gives each task the outcome SQS gave its entry: taken, failed, or not answered", async () => {
    const sqs = fakeSqs((_, p) => ({
      json: {
        Successful: [{ Id: p.Entries[0].Id, MessageId: "m-0" }],
        Failed: [{ Id: p.Entries[1].Id, Code: "InternalError", Message: "try again", SenderFault: false }],
      },
    }));
    const recorder = new RecordingTransport();
    await new Celery({ broker: recorder, defaultQueue: "sqsb.default" }).sendMany([1, 2, 3].map((i) => ({ task: "tasks.add", args: [i, i] })));
    const broker = sqsBroker({ region: "eu-west-1", credentials: { accessKeyId: "a", secretAccessKey: "b" }, predefinedQueues: { "sqsb-default": QUEUE_URL }, fetch: sqs.fetch });
    const outcomes = await broker.publishMany(recorder.messages);
    expect(sqs.calls).toHaveLength(1);
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, false]);
    expect(outcomes[0]).toEqual({ ok: true, receipt: { id: recorder.messages[0]!.meta.id, ref: "m-0" } });
    expect(!outcomes[1]!.ok && outcomes[1]!.error.message).toContain("InternalError");
    expect(!outcomes[2]!.ok && outcomes[2]!.error.message).toContain("without a result");
  });

  it("sends a FIFO queue's batches one after another, and a standard queue's at once", async () => {
    const events: string[] = [];
    let n = 0;
    const fetch: typeof globalThis.fetch = async (_url, init) => {
      const i = n++;
      const payload = JSON.parse(String(init!.body));
      events.push(`start ${i}`);
      await new Promise((r) => setTimeout(r, i === 0 ? 30 : 1));
      events.push(`end ${i}`);
      return new Response(JSON.stringify(allTaken("SendMessageBatch", payload).json), { status: 200 });
    };
    await appWith(fetch).sendMany(Array.from({ length: 12 }, (_, i) => ({ task: "tasks.add", args: [i, i], queue: "sqsb-jobs.fifo" })));
    expect(events).toEqual(["start 0", "end 0", "start 1", "end 1"]);
    events.length = 0;
    n = 0;
    await appWith(fetch).sendMany(Array.from({ length: 12 }, (_, i) => ({ task: "tasks.add", args: [i, i] })));
    expect(events.slice(0, 2)).toEqual(["start 0", "start 1"]);
  });

  it("sends 25 tasks to one queue as three SendMessageBatch calls of 10, 10 and 5", async () => {
    const sqs = fakeSqs(allTaken);
    const results = await appWith(sqs.fetch).sendMany(Array.from({ length: 25 }, (_, i) => ({ task: "tasks.add", args: [i, i] })));
    expect(results).toHaveLength(25);
    expect(sqs.calls.map((c) => c.payload.Entries.length)).toEqual([10, 10, 5]);
  });
});
