/**
 * @module
 * kombu's "zlib" (alias "gzip") compression: a zlib stream (RFC 1950, what Python's `zlib.compress`
 * writes) announced by the header `compression: application/x-gzip`. `CompressionStream("deflate")`
 * is that format; Node 18+ and workerd have it, the edge-runtime package (4.0) does not.
 */
import { UnsupportedRuntimeError } from "./errors.js";
import type { CompressionName } from "./options.js";

export const COMPRESSION_CONTENT_TYPE: Record<CompressionName, string> = {
  zlib: "application/x-gzip",
  gzip: "application/x-gzip",
};

async function pipe(bytes: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const out = new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream));
  return new Uint8Array(await out.arrayBuffer());
}

export function compress(bytes: Uint8Array): Promise<Uint8Array> {
  if (typeof CompressionStream === "undefined") return Promise.reject(new UnsupportedRuntimeError("compression needs CompressionStream, which this runtime lacks"));
  return pipe(bytes, new CompressionStream("deflate"));
}

/**
 * Inflates chunk by chunk and stops as soon as the output passes `maxBytes` (then: null), so a
 * small hostile body that inflates to gigabytes is never held in memory. Rejects a corrupt stream.
 */
export async function decompressAtMost(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array | null> {
  const reader = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate")).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
