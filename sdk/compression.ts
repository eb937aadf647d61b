/**
 * @module
 * kombu's "zlib" (alias "gzip") compression: a zlib stream (RFC 1950, what Python's `zlib.compress`
 * writes) announced by the header `compression: application/x-gzip`. `CompressionStream("deflate")`
 * is that format and exists on Node 18+, workerd and edge-runtime alike.
 */
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
  return pipe(bytes, new CompressionStream("deflate"));
}

export function decompress(bytes: Uint8Array): Promise<Uint8Array> {
  return pipe(bytes, new DecompressionStream("deflate"));
}
