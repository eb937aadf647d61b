/**
 * The region the SQS transport signs for, read from every SQS endpoint and queue URL form (the
 * `Credential=…/<day>/<region>/sqs/aws4_request` scope of the request it sends); where none can be
 * read, a ConfigurationError asks for `region` instead of signing for a guessed one (a 403 on
 * every send). The request goes to a recording `fetch` that answers as SQS does.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Celery, ConfigurationError } from "../../sdk/index.js";
import { sqsRelay, type SqsRelayOptions } from "../../sdk/sqs.js";

const credentials = { accessKeyId: "AKIDREGIONTEST", secretAccessKey: "region-test-secret" };
let savedRegion: string | undefined;

beforeEach(() => {
  savedRegion = process.env.AWS_REGION;
  delete process.env.AWS_REGION;
});

afterEach(() => {
  if (savedRegion === undefined) delete process.env.AWS_REGION;
  else process.env.AWS_REGION = savedRegion;
});

/** Sends one task and returns the region of the signature's credential scope. */
async function signedRegion(options: Omit<SqsRelayOptions, "credentials" | "fetch">): Promise<string> {
  let scope = "";
  const recordingFetch: typeof fetch = async (_input, init) => {
    scope = /Credential=[^/]+\/\d{8}\/([^/]+)\/sqs\/aws4_request/.exec(String((init?.headers as Record<string, string>).authorization))?.[1] ?? "";
    const { Entries } = JSON.parse(String(init?.body)) as { Entries: Array<{ Id: string }> };
    return new Response(JSON.stringify({ Successful: Entries.map((e) => ({ Id: e.Id, MessageId: "m" })), Failed: [] }), { headers: { "content-type": "application/x-amz-json-1.0" } });
  };
  await new Celery({ broker: sqsRelay({ ...options, credentials, fetch: recordingFetch }) }).sendTask("tasks.echo", { args: [] });
  return scope;
}

describe("the SQS transport reads the region", () => {
  const forms: Array<[string, Omit<SqsRelayOptions, "credentials" | "fetch">, string]> = [
    ["a queue URL (sqs.<region>.amazonaws.com)", { queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/intake" }, "eu-west-1"],
    ["a legacy queue URL (<region>.queue.amazonaws.com)", { queueUrl: "https://ap-northeast-1.queue.amazonaws.com/123456789012/intake" }, "ap-northeast-1"],
    ["a FIPS queue URL (sqs-fips.<region>.amazonaws.com)", { queueUrl: "https://sqs-fips.us-east-2.amazonaws.com/123456789012/intake" }, "us-east-2"],
    ["a GovCloud FIPS queue URL", { queueUrl: "https://sqs-fips.us-gov-west-1.amazonaws.com/123456789012/intake" }, "us-gov-west-1"],
    ["a China queue URL (.amazonaws.com.cn)", { queueUrl: "https://sqs.cn-northwest-1.amazonaws.com.cn/123456789012/intake" }, "cn-northwest-1"],
    ["a dual-stack queue URL (sqs.<region>.api.aws)", { queueUrl: "https://sqs.ca-central-1.api.aws/123456789012/intake" }, "ca-central-1"],
    ["a VPC endpoint queue URL (vpce-….sqs.<region>.vpce.amazonaws.com)", { queueUrl: "https://vpce-0a1b2c3d4e5f67890-abcdefgh.sqs.ap-southeast-2.vpce.amazonaws.com/123456789012/intake" }, "ap-southeast-2"],
    [
      "a VPC endpoint with a standard queue URL",
      { queueUrl: "https://sqs.ap-southeast-2.amazonaws.com/123456789012/intake", endpoint: "https://vpce-0a1b2c3d4e5f67890-abcdefgh.sqs.ap-southeast-2.vpce.amazonaws.com" },
      "ap-southeast-2",
    ],
    [
      "a zonal VPC endpoint, whose name holds the zone (…-eu-central-1a.sqs.eu-central-1.vpce…)",
      { queueUrl: "https://vpce-0a1b2c3d4e5f67890-abcdefgh-eu-central-1a.sqs.eu-central-1.vpce.amazonaws.com/123456789012/intake" },
      "eu-central-1",
    ],
    ["the endpoint before the queue URL", { queueUrl: "https://sqs.us-west-2.amazonaws.com/123456789012/intake", endpoint: "https://sqs-fips.us-west-1.amazonaws.com" }, "us-west-1"],
    ["a queue URL behind an emulator endpoint", { queueUrl: "https://sqs.me-south-1.amazonaws.com/123456789012/intake", endpoint: "http://127.0.0.1:9" }, "me-south-1"],
    ["the region option over everything", { queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/intake", region: "eu-north-1" }, "eu-north-1"],
  ];
  for (const [name, options, region] of forms) {
    it(`from ${name}`, async () => {
      expect(await signedRegion(options)).toBe(region);
    });
  }

  it("from AWS_REGION for a host that names none", async () => {
    process.env.AWS_REGION = "sa-east-1";
    expect(await signedRegion({ queueUrl: "https://sqs-proxy.internal.example/123456789012/intake" })).toBe("sa-east-1");
  });

  it("as us-east-1 for a plain-http emulator that names none (emulators take any region)", async () => {
    expect(await signedRegion({ queueUrl: "http://127.0.0.1:9/000000000000/intake" })).toBe("us-east-1");
  });
});

describe("without a region to read", () => {
  for (const queueUrl of ["https://sqs-proxy.internal.example/123456789012/intake", "https://queue.amazonaws.com/123456789012/intake"]) {
    it(`refuses ${queueUrl} with a ConfigurationError asking for region`, () => {
      let err: unknown;
      try {
        sqsRelay({ queueUrl, credentials });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigurationError);
      expect((err as Error).message).toMatch(/region/);
    });
  }
});
