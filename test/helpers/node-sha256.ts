/**
 * The Node hash (SHA-256, HMAC when keyed) that `@smithy/signature-v4` takes as `sha256`: the AWS
 * SDK's own signer, the reference our SigV4 is checked against.
 */
import { createHash, createHmac } from "node:crypto";

export class Sha256 {
  private readonly hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    const key = secret === undefined || typeof secret === "string" ? secret : secret instanceof ArrayBuffer ? new Uint8Array(secret) : new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength);
    this.hash = key ? createHmac("sha256", key) : createHash("sha256");
  }
  update(data: string | Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}
