/**
 * @module
 * AWS Signature Version 4 for the one request the SQS transport makes (a JSON POST to a service
 * endpoint), on WebCrypto so it runs on every runtime. A general signer (aws4fetch) costs a sixth
 * of the edge bundle budget for query signing, S3 rules and retries we never use; this one is
 * checked against the AWS SDK's own signer (`@smithy/signature-v4`) in test/unit/sigv4.test.ts.
 */

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const encoder = new TextEncoder();

const hex = (bytes: ArrayBuffer): string => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

const sha256Hex = async (text: string): Promise<string> => hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));

async function hmac(key: BufferSource, text: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, encoder.encode(text));
}

/**
 * Headers for a signed POST of `body` to `url`. The path must need no URI escaping, which holds
 * for service endpoints (`/`).
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
  const { host, pathname } = new URL(url);
  const amzDate = now.toISOString().replace(/[-:]|\.\d+/g, "");
  const day = amzDate.slice(0, 8);
  const signed: Record<string, string> = {
    ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v.trim()])),
    host,
    "x-amz-date": amzDate,
    ...(credentials.sessionToken ? { "x-amz-security-token": credentials.sessionToken } : {}),
  };
  const names = Object.keys(signed).sort();
  const signedHeaders = names.join(";");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const canonicalRequest = ["POST", pathname, "", ...names.map((n) => `${n}:${signed[n]}`), "", signedHeaders, await sha256Hex(body)].join("\n");
  let key: BufferSource = encoder.encode(`AWS4${credentials.secretAccessKey}`);
  for (const part of [day, region, service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, ["AWS4-HMAC-SHA256", amzDate, scope, await sha256Hex(canonicalRequest)].join("\n")));
  // fetch sets Host itself.
  const { host: _host, ...rest } = signed;
  return { ...rest, authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}` };
}
