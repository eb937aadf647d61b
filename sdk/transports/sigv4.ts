/**
 * @module
 * AWS Signature Version 4 for the one request the SQS transport makes (a JSON POST to a service
 * endpoint), on WebCrypto so it runs on every runtime. A general signer (aws4fetch) costs a sixth
 * of the edge bundle budget for query signing, S3 rules and retries we never use; this one is
 * checked against the AWS SDK's own signer (`@smithy/signature-v4`) on generated requests in
 * test/unit/sigv4-crosscheck.test.ts. Written for size: every byte here is in every edge bundle.
 */

import { toHex as hex } from "../base64.js";
import { utf8Encoder } from "../serializers/utf8.js";

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const sha256Hex = async (text: string): Promise<string> => hex(await crypto.subtle.digest("SHA-256", utf8Encoder.encode(text)));

const hmac = async (key: BufferSource, text: string): Promise<ArrayBuffer> =>
  crypto.subtle.sign("HMAC", await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]), utf8Encoder.encode(text));

/** RFC 3986 percent-encoding, as SigV4 wants it (`escape` does `!'()`, not `*`). */
const enc = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => (c == "*" ? "%2A" : escape(c)));

/**
 * Headers for a signed POST of `body` to `url`; `headers` are named in lower case. Canonical as AWS
 * reads a request (every service but S3): the path with empty segments dropped and encoded once
 * more; the query's names and values decoded (`+` is a space: write %2B for a plus), encoded again
 * and sorted; header values trimmed, runs of spaces and tabs made one space.
 */
export async function signPost(
  url: string,
  headers: Record<string, string>,
  body: string,
  credentials: SigningCredentials,
  region: string,
  service: string,
  now: Date = new Date(),
): Promise<Record<string, string>> {
  const { host, pathname, search } = new URL(url);
  const amzDate = now.toISOString().replace(/[-:]|\.\d+/g, "");
  const scope = `${amzDate.slice(0, 8)}/${region}/${service}/aws4_request`;
  const signed: Record<string, string> = { ...headers, "x-amz-date": amzDate };
  if (credentials.sessionToken) signed["x-amz-security-token"] = credentials.sessionToken;
  // fetch sets Host itself: it is signed, not returned.
  const all: Record<string, string> = { ...signed, host };
  const names = Object.keys(all).sort();
  const signedHeaders = names.join(";");
  const canonicalRequest = [
    "POST",
    enc(pathname.replace(/\/+/g, "/")).replace(/%2F/g, "/"),
    // "\0" sorts below every encoded character: pairs sort by name, then by value.
    [...new URLSearchParams(search)].map(([k, v]) => enc(k) + "\0" + enc(v)).sort().join("&").replace(/\0/g, "="),
    ...names.map((n) => `${n}:${all[n]!.replace(/[ \t]+/g, " ").trim()}`),
    "",
    signedHeaders,
    await sha256Hex(body),
  ].join("\n");
  // The signing key: HMAC chained over the scope's parts (day, region, service, "aws4_request").
  let key: BufferSource = utf8Encoder.encode(`AWS4${credentials.secretAccessKey}`);
  for (const part of scope.split("/")) key = await hmac(key, part);
  const signature = hex(await hmac(key, `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${await sha256Hex(canonicalRequest)}`));
  return { ...signed, authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
}
