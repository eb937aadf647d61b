/**
 * Our SigV4 signer against the AWS SDK's own (`@smithy/signature-v4`, what @aws-sdk/client-sqs uses).
 */
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, it } from "vitest";
import { signPost } from "../../sdk/transports/sigv4.js";
import { Sha256 } from "../helpers/node-sha256.js";


const HEADERS = { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.SendMessageBatch" };
const cases = [
  { name: "long-term keys", creds: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" } },
  { name: "a session token (Lambda's role credentials)", creds: { accessKeyId: "ASIAEXAMPLE", secretAccessKey: "s3cr3t", sessionToken: "IQoJb3JpZ2luX2VjE/+=tok" } },
];

describe("signPost signs exactly as the AWS SDK does", () => {
  for (const { name, creds } of cases) {
    it(`with ${name}`, async () => {
      const now = new Date("2026-11-25T12:34:56.789Z");
      const body = JSON.stringify({ QueueUrl: "https://sqs.eu-west-1.amazonaws.com/1/q", Entries: [{ Id: "0", MessageBody: "h\u00e9llo \u2603" }] });
      const ours = await signPost("https://sqs.eu-west-1.amazonaws.com/", HEADERS, body, creds, "eu-west-1", "sqs", now);
      const signer = new SignatureV4({ credentials: creds, region: "eu-west-1", service: "sqs", sha256: Sha256, applyChecksum: false });
      const theirs = await signer.sign(
        { method: "POST", protocol: "https:", hostname: "sqs.eu-west-1.amazonaws.com", path: "/", headers: { host: "sqs.eu-west-1.amazonaws.com", ...HEADERS }, body },
        { signingDate: now },
      );
      expect(ours.authorization).toBe(theirs.headers.authorization);
      expect(ours["x-amz-date"]).toBe(theirs.headers["x-amz-date"]);
      expect(ours["x-amz-security-token"]).toBe(theirs.headers["x-amz-security-token"]);
    });
  }
});
