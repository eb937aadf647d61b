/**
 * Our SigV4 signer against the AWS SDK's own (`@smithy/signature-v4`, what @aws-sdk/client-sqs
 * uses) on generated requests: endpoint paths and query strings with reserved, percent-encoded and
 * non-ASCII characters, header values with runs of spaces and tabs, session tokens, bodies, and
 * dates on day, month, year and leap-day boundaries. The two fixed cases: test/unit/sigv4.test.ts.
 *
 * The AWS SDK is given the request as the server reads it: the path as it goes on the wire (what
 * the URL parser made of it) and the query as the names and values that were encoded into it.
 */
import { SignatureV4 } from "@smithy/signature-v4";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { signPost, type SigningCredentials } from "../../sdk/transports/sigv4.js";
import { Sha256 } from "../helpers/node-sha256.js";


interface GeneratedRequest {
  host: string;
  rawPath: string;
  query: Array<[string, string]>;
  headers: Record<string, string>;
  body: string;
  credentials: SigningCredentials;
  region: string;
  now: Date;
}

/** Characters that URLs, SigV4 or both treat specially. */
const special = fc.constantFrom(" ", "  ", "+", "%", "%2F", "%41", "%zz", "/", "//", "~", "!", "'", "(", ")", "*", "$", "&", "=", ",", ";", ":", "@", "[", "]", "é", "☃", "😀", "-", "_", ".");
const text = (maxLength: number) => fc.array(fc.oneof(special, fc.string({ unit: "grapheme", maxLength: 4 })), { maxLength }).map((parts) => parts.join(""));
const pathSegment = text(4).map((s) => s.replace(/[?#\\]/g, ""));
const headerValue = fc
  .array(fc.oneof(fc.constantFrom(" ", "   ", "\t", " \t ", "a", "b"), fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 6 })), { maxLength: 8 })
  .map((parts) => parts.join(""));
const headerName = fc.stringMatching(/^x-[a-z0-9-]{1,12}$/).filter((n) => !["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"].includes(n));
const boundaryDates = fc.constantFrom(
  "1999-12-31T23:59:59.999Z",
  "2000-01-01T00:00:00.000Z",
  "2000-02-29T12:00:00.000Z",
  "2024-02-29T23:59:59.999Z",
  "2024-03-01T00:00:00.000Z",
  "2026-06-30T23:59:59.500Z",
  "2038-01-19T03:14:08.000Z",
  "2099-12-31T23:59:59.999Z",
);
const dates = fc.oneof(fc.date({ min: new Date("1970-01-01T00:00:00Z"), max: new Date("2099-12-31T23:59:59Z"), noInvalidDate: true }), boundaryDates.map((d) => new Date(d)));

const requests: fc.Arbitrary<GeneratedRequest> = fc.record({
  host: fc.constantFrom("sqs.eu-west-1.amazonaws.com", "sqs-fips.us-gov-west-1.amazonaws.com", "vpce-0a1b2c3d4e5f-abcdefgh.sqs.ap-southeast-2.vpce.amazonaws.com", "127.0.0.1:9324", "localhost:4566"),
  rawPath: fc.array(pathSegment, { maxLength: 4 }).map((segments) => "/" + segments.join("/")),
  query: fc.array(fc.tuple(text(3).filter((s) => s !== ""), text(3)), { maxLength: 5 }),
  headers: fc.dictionary(headerName, headerValue, { maxKeys: 4 }).map((extra) => ({ "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.SendMessageBatch", ...extra })),
  body: text(10),
  credentials: fc.record(
    {
      accessKeyId: fc.stringMatching(/^(AKIA|ASIA)[A-Z0-9]{16}$/),
      secretAccessKey: fc.string({ unit: fc.constantFrom(..."abcXYZ0189+/="), minLength: 1, maxLength: 40 }),
      sessionToken: fc.string({ unit: fc.constantFrom(..."IQoJb3JpZ2luX2VjE/+=0123456789"), minLength: 1, maxLength: 200 }),
    },
    { requiredKeys: ["accessKeyId", "secretAccessKey"] },
  ),
  region: fc.constantFrom("us-east-1", "eu-west-1", "us-gov-west-1", "cn-north-1", "ap-southeast-2"),
  now: dates,
});

/** The URL our transport would fetch: the query as a client writes it (names and values percent-encoded). */
function urlOf(r: GeneratedRequest): string {
  const query = r.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&");
  return `https://${r.host}${r.rawPath}${query ? `?${query}` : ""}`;
}

async function theirs(r: GeneratedRequest): Promise<Record<string, string | undefined>> {
  const url = new URL(urlOf(r));
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of r.query) {
    const seen = query[k];
    query[k] = seen === undefined ? v : Array.isArray(seen) ? [...seen, v] : [seen, v];
  }
  const signer = new SignatureV4({ credentials: r.credentials, region: r.region, service: "sqs", sha256: Sha256, applyChecksum: false });
  const signed = await signer.sign(
    { method: "POST", protocol: "https:", hostname: url.hostname, path: url.pathname, query, headers: { host: url.host, ...r.headers }, body: r.body },
    { signingDate: r.now },
  );
  return signed.headers;
}

describe("signPost signs generated requests exactly as the AWS SDK does", () => {
  it("on 1 500 requests with paths, queries, spaced header values, session tokens and boundary dates", async () => {
    await fc.assert(
      fc.asyncProperty(requests, async (r) => {
        // Act
        const ours = await signPost(urlOf(r), r.headers, r.body, r.credentials, r.region, "sqs", r.now);
        const expected = await theirs(r);

        // Assess
        expect(ours.authorization).toBe(expected.authorization);
        expect(ours["x-amz-date"]).toBe(expected["x-amz-date"]);
        expect(ours["x-amz-security-token"]).toBe(expected["x-amz-security-token"]);
      }),
      { numRuns: 1_500, seed: 20_260_514 },
    );
  });

  it("signs an endpoint with a query string", async () => {
    const r: GeneratedRequest = {
      host: "sqs.eu-west-1.amazonaws.com",
      rawPath: "/",
      query: [["b", "2"], ["a", "x y"], ["a", "1"]],
      headers: { "content-type": "application/x-amz-json-1.0" },
      body: "{}",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      region: "eu-west-1",
      now: new Date("2026-01-01T00:00:00Z"),
    };
    expect((await signPost(urlOf(r), r.headers, r.body, r.credentials, r.region, "sqs", r.now)).authorization).toBe((await theirs(r)).authorization);
  });

  it("signs header values holding runs of spaces and tabs", async () => {
    const r: GeneratedRequest = {
      host: "sqs.eu-west-1.amazonaws.com",
      rawPath: "/",
      query: [],
      headers: { "content-type": "application/x-amz-json-1.0", "x-custom": "  a   b \t c  " },
      body: "{}",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret", sessionToken: "tok/en+=" },
      region: "eu-west-1",
      now: new Date("2024-02-29T23:59:59.999Z"),
    };
    expect((await signPost(urlOf(r), r.headers, r.body, r.credentials, r.region, "sqs", r.now)).authorization).toBe((await theirs(r)).authorization);
  });

  it("signs a path that needs escaping (spaces, reserved and non-ASCII characters, empty segments)", async () => {
    const r: GeneratedRequest = {
      host: "127.0.0.1:9324",
      rawPath: "//000000000000/a b/é*(x)//q!",
      query: [],
      headers: { "content-type": "application/x-amz-json-1.0" },
      body: "",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
      region: "us-east-1",
      now: new Date("2025-12-31T23:59:59Z"),
    };
    expect((await signPost(urlOf(r), r.headers, r.body, r.credentials, r.region, "sqs", r.now)).authorization).toBe((await theirs(r)).authorization);
  });
});
