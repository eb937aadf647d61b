/**
 * The SQS transport after a clock-skew answer: SQS refuses a signature more than 15 minutes from
 * its own clock and says its time in `Date`; the transport signs once more on that clock, keeps
 * the offset for later sends, and does not retry a second time. Against a local endpoint that
 * answers as SQS does (test/helpers/skewed-clock-sqs.ts) and checks signatures with the AWS SDK's
 * signer.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Celery, type CeleryError } from "../../sdk/index.js";
import { sqsRelay } from "../../sdk/sqs.js";
import { startSkewedClockSqs, type SkewedClockSqs } from "../helpers/skewed-clock-sqs.js";

const credentials = { accessKeyId: "AKIDSKEWTEST", secretAccessKey: "skew-test-secret" };
const REGION = "eu-west-1";
const HOUR = 3_600_000;
let sqs: SkewedClockSqs | undefined;

afterEach(async () => {
  await sqs?.close();
  sqs = undefined;
});

async function appFor(options: { clockOffsetMs: number; alwaysExpired?: boolean }): Promise<Celery> {
  sqs = await startSkewedClockSqs({ ...options, credentials, region: REGION });
  return new Celery({ broker: sqsRelay({ queueUrl: `${sqs.endpoint}/000000000000/intake`, region: REGION, credentials }) });
}

/** Seconds between a request's signing time and the server's clock. */
const skewSeconds = (r: { amzDate: string; serverTime: Date }): number =>
  Math.abs(Date.parse(r.amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, "$1-$2-$3T$4:$5:$6Z")) - r.serverTime.getTime()) / 1000;

describe("a clock-skew answer from SQS", () => {
  it("is retried once on the server's clock when ours is behind (400 'Signature expired')", async () => {
    // Prepare
    const app = await appFor({ clockOffsetMs: HOUR });

    // Act
    const result = await app.sendTask("tasks.echo", { args: ["skewed"] });

    // Assess
    expect(result.id).toBeTruthy();
    expect(sqs!.requests.map((r) => r.status)).toEqual([400, 200]);
    expect(skewSeconds(sqs!.requests[1]!)).toBeLessThan(5);
  });

  it("is retried once on the server's clock when ours is ahead (403 'Signature not yet current')", async () => {
    const app = await appFor({ clockOffsetMs: -HOUR });
    await app.sendTask("tasks.echo", { args: ["skewed"] });
    expect(sqs!.requests.map((r) => r.status)).toEqual([403, 200]);
    expect(skewSeconds(sqs!.requests[1]!)).toBeLessThan(5);
  });

  it("keeps the server's offset: the next send is signed on its clock at once", async () => {
    // Prepare
    const app = await appFor({ clockOffsetMs: 2 * HOUR });
    await app.sendTask("tasks.echo", { args: ["first"] });

    // Act
    await app.sendTask("tasks.echo", { args: ["second"] });

    // Assess
    expect(sqs!.requests.map((r) => r.status)).toEqual([400, 200, 200]);
  });

  it("is not retried a second time: the send fails with SQS's error after two requests", async () => {
    const app = await appFor({ clockOffsetMs: HOUR, alwaysExpired: true });
    const err = (await app.sendTask("tasks.echo", { args: [] }).catch((e: CeleryError) => e)) as CeleryError;
    expect(err.code).toBe("ERR_PUBLISH");
    expect(err.message).toMatch(/InvalidSignatureException.*Signature expired/);
    expect(sqs!.requests).toHaveLength(2);
  });
});
