/**
 * @module
 * One signed SQS JSON-protocol call (universal), for the SQS broker: SigV4 on WebCrypto
 * (`sigv4.ts`), retries on throttling and 5xx (SQS is at-least-once: a retried send cannot lose a
 * task), and one re-signing on the server's clock when the answer says the signature is outside
 * SQS's time window — the same policy `SqsTransport` applies to the relay's intake queue.
 */
import { ConfigurationError } from "../errors.js";
import { signPost } from "./sigv4.js";
import { envCredentials, type AwsCredentials } from "./sqs.js";

export interface SqsCallTarget {
  endpoint: string;
  region: string;
  credentials?: AwsCredentials | (() => Promise<AwsCredentials>);
  fetch: typeof fetch;
}

/** What an SQS JSON error answer carries. */
export interface SqsAnswer {
  ok: boolean;
  status: number;
  /** The error's short type (`QueueDoesNotExist`, `AWS.SimpleQueueService.NonExistentQueue` → its last part), else "". */
  errorType: string;
  json: Record<string, unknown>;
  text: string;
}

export type SqsCall = (action: string, payload: unknown, signal: AbortSignal) => Promise<SqsAnswer>;

/** A caller of SQS actions for one endpoint; keeps the clock offset it learns. */
export function sqsCaller(target: SqsCallTarget): SqsCall {
  let skew = 0;
  const credentials = async (): Promise<AwsCredentials> => {
    const c = typeof target.credentials === "function" ? await target.credentials() : (target.credentials ?? envCredentials());
    if (!c) throw new ConfigurationError("sqsBroker: no AWS credentials (pass `credentials`, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
    return c;
  };
  return async (action, payload, signal) => {
    const creds = await credentials();
    const body = JSON.stringify(payload);
    const headers = { "content-type": "application/x-amz-json-1.0", "x-amz-target": `AmazonSQS.${action}` };
    for (let attempt = 0, skewed = 0; ; attempt++) {
      const signed = await signPost(target.endpoint, headers, body, creds, target.region, "sqs", new Date(Date.now() + skew));
      const response = await target.fetch(target.endpoint, { method: "POST", headers: signed, body, signal });
      const text = await response.text();
      if (!skewed++ && /Signature [en]|Skew/.test(text)) {
        skew = Date.parse(response.headers.get("date")!) - Date.now() || 0;
        continue;
      }
      if ((response.status !== 429 && response.status < 500) || attempt >= 2) {
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) ?? {};
        } catch {
          // not JSON: reported through `text`
        }
        const type = typeof json.__type === "string" ? json.__type : (response.headers.get("x-amzn-query-error") ?? "");
        return { ok: response.ok, status: response.status, errorType: type.split("#").pop()!.split(";")[0]!.split(".").pop()!.slice(0, 100), json, text };
      }
      await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
    }
  };
}
