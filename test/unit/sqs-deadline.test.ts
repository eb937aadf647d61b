/**
 * A publish's `timeout` on the SQS transport: the HTTPS request (with its retries) is aborted when
 * the call's time is up, and the batch rejects with `TimeoutError` (`ERR_TIMEOUT`) saying the tasks
 * may have been sent. The endpoint is a loopback HTTP server that takes the request and never
 * answers, reached by the runtime's own `fetch`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Celery, TimeoutError, type TaskMessage } from "../../sdk/index.js";
import { sqsRelay } from "../../sdk/sqs.js";
import type { PublishOptions } from "../../sdk/transport.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const credentials = { accessKeyId: "AKIDDEADLINETEST", secretAccessKey: "deadline-test-secret" };

/** An SQS endpoint that reads each request and leaves it unanswered; it counts what it received. */
interface SilentSqs {
  queueUrl: string;
  readonly requests: number;
  stop(): Promise<void>;
}

async function silentSqs(): Promise<SilentSqs> {
  const state = { requests: 0 };
  const server = http.createServer((req) => {
    req.resume();
    req.on("end", () => state.requests++);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    queueUrl: `http://127.0.0.1:${port}/123456789012/intake`,
    get requests() {
      return state.requests;
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function oneMessage(): Promise<TaskMessage> {
  const recorder = new RecordingTransport();
  await new Celery({ broker: recorder }).sendTask("tasks.echo", { args: ["deadline"] });
  return recorder.messages[0]!;
}

/** Publishes one message and reports how it settled and when (ms after the call). */
async function publishTimed(call: PublishOptions): Promise<{ error: unknown; ms: number }> {
  const transport = sqsRelay({ queueUrl: sqs.queueUrl, credentials });
  const message = await oneMessage();
  const t0 = Date.now();
  const error = await transport.publish(message, call).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, ms: Date.now() - t0 };
}

let sqs: SilentSqs;

beforeEach(async () => {
  sqs = await silentSqs();
});

afterEach(async () => {
  await sqs.stop();
});

describe("an SQS publish against an endpoint that never answers", () => {
  it("rejects with TimeoutError ERR_TIMEOUT when the call's timeout is up, saying the tasks may have been sent", async () => {
    // Act
    const { error, ms } = await publishTimed({ timeout: 300 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe("ERR_TIMEOUT");
    expect((error as Error).message).toMatch(/within 300 ms; the tasks may have been sent/);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_500);
    expect(sqs.requests).toBe(1); // the request went out: "may have been sent" is the truth
  });

  it("honours a deprecated publishTimeout given alone", async () => {
    // Act
    const { error, ms } = await publishTimed({ publishTimeout: 300 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(1_500);
  });

  it("allows the deprecated connectTimeout and publishTimeout together, as before", async () => {
    // Act
    const { error, ms } = await publishTimed({ connectTimeout: 300, publishTimeout: 300 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toContain("600 ms");
    expect(ms).toBeGreaterThanOrEqual(590);
    expect(ms).toBeLessThan(1_800);
  });

  it("lets timeout win over the deprecated fields", async () => {
    // Act
    const { error, ms } = await publishTimed({ timeout: 300, connectTimeout: 5_000, publishTimeout: 5_000 });

    // Assess
    expect(error).toBeInstanceOf(TimeoutError);
    expect(ms).toBeLessThan(1_500);
  });
});
