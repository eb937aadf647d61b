/**
 * Size limits the SQS transport enforces before anything leaves the process.
 */
import { describe, expect, it } from "vitest";
import { Celery, PayloadTooLargeError, type CeleryError } from "../../sdk/index.js";
import { sqsRelay } from "../../sdk/sqs.js";

// Port 9 on loopback: nothing listens, so a request that did go out would fail as ERR_CONNECTION.
const unreachable = { queueUrl: "http://127.0.0.1:9/000000000000/intake", credentials: { accessKeyId: "a", secretAccessKey: "b" } };

describe("the SQS transport refuses what SQS or Scheduler would refuse", () => {
  it("refuses a task over SQS's 1 MiB with the size and the limit", async () => {
    const app = new Celery({ broker: sqsRelay(unreachable) });
    const err = (await app.sendTask("tasks.echo", { args: ["x".repeat(1_048_576)] }).catch((e: CeleryError) => e)) as PayloadTooLargeError;
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect([err.code, err.limit]).toEqual(["ERR_PAYLOAD_TOO_LARGE", 1_048_576]);
    expect(err.size).toBeGreaterThan(1_048_576);
  });

  it("refuses a far-ETA task over Scheduler's 256 KB Input at send time", async () => {
    const app = new Celery({ broker: sqsRelay(unreachable) });
    const eta = new Date(Date.now() + 3_600_000);
    const err = (await app.sendTask("tasks.echo", { args: ["x".repeat(300_000)], eta }).catch((e: CeleryError) => e)) as PayloadTooLargeError;
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    expect(err.limit).toBe(262_144);
    expect(err.message).toContain("Scheduler Input");
  });

  it("lets a near-ETA task of the same size through to SQS (it fails here only on the network)", async () => {
    const app = new Celery({ broker: sqsRelay(unreachable) });
    const err = (await app.sendTask("tasks.echo", { args: ["x".repeat(300_000)], countdown: 60 }).catch((e: CeleryError) => e)) as CeleryError;
    expect(err.code).toBe("ERR_CONNECTION");
  });

  it("splits a batch into SendMessageBatch calls of at most ten entries", async () => {
    const bodies: Array<{ Entries: unknown[] }> = [];
    const fetchStub: typeof fetch = async (input, init) => {
      const req = input instanceof Request ? input : new Request(input, init);
      const body = JSON.parse(await req.text()) as { Entries: Array<{ Id: string }> };
      bodies.push(body);
      return new Response(JSON.stringify({ Successful: body.Entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}` })), Failed: [] }), { status: 200 });
    };
    const app = new Celery({ broker: sqsRelay({ ...unreachable, fetch: fetchStub }) });
    const results = await app.sendMany(Array.from({ length: 25 }, (_, i) => ({ task: "tasks.add", args: [i, i] })));
    expect(results).toHaveLength(25);
    // Batches go out concurrently, so they may arrive in any order.
    expect(bodies.map((b) => b.Entries.length).sort((x, y) => x - y)).toEqual([5, 10, 10]);
  });

  it("reports per-entry SQS failures per task, never as sent", async () => {
    const fetchStub: typeof fetch = async (input, init) => {
      const req = input instanceof Request ? input : new Request(input, init);
      const body = JSON.parse(await req.text()) as { Entries: Array<{ Id: string }> };
      const [first, ...rest] = body.Entries;
      return new Response(
        JSON.stringify({ Successful: rest.map((e) => ({ Id: e.Id, MessageId: "m" })), Failed: [{ Id: first!.Id, Code: "InternalError", SenderFault: false, Message: "try again" }] }),
        { status: 200 },
      );
    };
    const app = new Celery({ broker: sqsRelay({ ...unreachable, fetch: fetchStub }) });
    const err = (await app.sendMany([{ task: "a" }, { task: "b" }, { task: "c" }]).catch((e: CeleryError) => e)) as import("../../sdk/errors.js").BatchPublishError;
    expect(err.code).toBe("ERR_BATCH");
    expect(err.outcomes.map((o) => o.ok)).toEqual([false, true, true]);
    expect((err.outcomes[0] as { error: Error }).error.message).toContain("InternalError");
  });
});
