/**
 * @module
 * Test fixture: a tiny SQS SendMessageBatch endpoint on 127.0.0.1 whose clock is off by a set
 * offset, answering as SQS does when a request's signature time is outside its 15-minute window:
 * HTTP 400 `InvalidSignatureException` "Signature expired: …" (or, for a request from the future,
 * HTTP 403 `SignatureDoesNotMatch` "Signature not yet current: …"), with its own time in `Date`.
 * Requests inside the window are checked against the AWS SDK's signer (`@smithy/signature-v4`) and
 * answered with a SendMessageBatch result; a bad signature gets SQS's 403 `SignatureDoesNotMatch`.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "./node-sha256.js";

export interface SkewedClockSqsOptions {
  /** The server's clock minus the real one, in milliseconds (positive: the server is ahead). */
  clockOffsetMs: number;
  /** The credentials requests must be signed with. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  region: string;
  /** Answer every request as expired, whatever its time (a server whose `Date` cannot be trusted). @default false */
  alwaysExpired?: boolean;
}

export interface SkewedRequest {
  /** The request's `x-amz-date`. */
  amzDate: string;
  /** The server's clock when it answered. */
  serverTime: Date;
  status: number;
}

export interface SkewedClockSqs {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  requests: SkewedRequest[];
  close(): Promise<void>;
}

const WINDOW_MS = 15 * 60_000;


const amz = (d: Date): string => d.toISOString().replace(/[-:]|\.\d+/g, "");
const fromAmz = (s: string): Date => new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startSkewedClockSqs(options: SkewedClockSqsOptions): Promise<SkewedClockSqs> {
  const requests: SkewedRequest[] = [];
  const signer = new SignatureV4({ credentials: options.credentials, region: options.region, service: "sqs", sha256: Sha256, applyChecksum: false });
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const serverTime = new Date(Date.now() + options.clockOffsetMs);
      const amzDate = String(req.headers["x-amz-date"] ?? "");
      const signedAt = fromAmz(amzDate);
      const answer = (status: number, json: unknown): void => {
        requests.push({ amzDate, serverTime, status });
        res.writeHead(status, { "content-type": "application/x-amz-json-1.0", date: serverTime.toUTCString() });
        res.end(JSON.stringify(json));
      };
      const window = `${amz(serverTime)}`;
      if (options.alwaysExpired || signedAt.getTime() < serverTime.getTime() - WINDOW_MS) {
        answer(400, {
          __type: "com.amazon.coral.service#InvalidSignatureException",
          message: `Signature expired: ${amzDate} is now earlier than ${amz(new Date(serverTime.getTime() - WINDOW_MS))} (${window} - 15 min.)`,
        });
        return;
      }
      if (signedAt.getTime() > serverTime.getTime() + WINDOW_MS) {
        answer(403, {
          __type: "com.amazon.coral.service#SignatureDoesNotMatch",
          message: `Signature not yet current: ${amzDate} is still later than ${amz(new Date(serverTime.getTime() + WINDOW_MS))} (${window} + 15 min.)`,
        });
        return;
      }
      // Verify the signature over exactly the headers the client says it signed.
      const authorization = String(req.headers.authorization ?? "");
      const signedNames = /SignedHeaders=([^,]+)/.exec(authorization)?.[1]?.split(";") ?? [];
      const headers = Object.fromEntries(signedNames.map((n) => [n, String(req.headers[n] ?? "")]));
      const url = new URL(req.url ?? "/", "http://placeholder");
      const expected = await signer.sign({ method: "POST", protocol: "http:", hostname: "127.0.0.1", path: url.pathname, query: {}, headers, body }, { signingDate: signedAt });
      if (expected.headers.authorization !== authorization) {
        answer(403, { __type: "com.amazon.coral.service#SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided." });
        return;
      }
      const entries = (JSON.parse(body) as { Entries: Array<{ Id: string }> }).Entries;
      answer(200, { Successful: entries.map((e, i) => ({ Id: e.Id, MessageId: `m-${requests.length}-${i}`, MD5OfMessageBody: "" })), Failed: [] });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
