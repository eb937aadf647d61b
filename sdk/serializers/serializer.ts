/**
 * @module
 * What a serializer is. Content types and encodings are kombu's, so a Celery worker picks the
 * matching decoder.
 */

export interface Serializer {
  /** The name users pass as `serializer` ("json", "yaml", "msgpack", "pickle", or a custom one). */
  readonly name: string;
  /** AMQP `content_type`, e.g. "application/json". */
  readonly contentType: string;
  /** AMQP `content_encoding`: "utf-8" for text formats, "binary" otherwise. */
  readonly contentEncoding: string;
  /** Throws `SerializationError` naming the offending path for values the format cannot carry. */
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
  /**
   * Loads what `decode` needs when that is imported on first use (the YAML reader and its library):
   * a promise to await before `decode`, or undefined once `decode` can run. @default always ready
   */
  load?(): Promise<void> | undefined;
}
