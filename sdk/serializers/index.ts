/**
 * @module
 * The serializer registry: kombu's four built-ins (json, yaml, msgpack, pickle) plus any the
 * application registers. Names pick the encoder for tasks; content types pick the decoder for
 * results, as kombu does on the worker side.
 */
import { ConfigurationError } from "../errors.js";
import { jsonSerializer } from "./json.js";
import { msgpackSerializer } from "./msgpack.js";
import { pickleSerializer } from "./pickle.js";
import type { Serializer } from "./serializer.js";
import { yamlSerializer } from "./yaml.js";

const byName = new Map<string, Serializer>();
const byContentType = new Map<string, Serializer>();

/** Adds a serializer, or replaces the one with the same name (and content type), as kombu's registry does. */
export function registerSerializer(serializer: Serializer): void {
  if (!serializer.name || !serializer.contentType) {
    throw new ConfigurationError("a serializer needs a name and a contentType", { code: "ERR_INVALID_OPTION" });
  }
  const previous = byName.get(serializer.name);
  if (previous && byContentType.get(normalizeContentType(previous.contentType)) === previous) {
    byContentType.delete(normalizeContentType(previous.contentType));
  }
  byName.set(serializer.name, serializer);
  byContentType.set(normalizeContentType(serializer.contentType), serializer);
}

/** The serializer called `name`; throws `ConfigurationError` (ERR_INVALID_OPTION) for unknown names. */
export function getSerializer(name: string): Serializer {
  const serializer = byName.get(name);
  if (!serializer) {
    const known = [...byName.keys()].join(", ");
    throw new ConfigurationError(`serializer must be one of ${known}; got ${JSON.stringify(name)}`, { code: "ERR_INVALID_OPTION" });
  }
  return serializer;
}

/**
 * The serializer that decodes bodies of `contentType` (parameters such as `; charset=utf-8` and
 * letter case are ignored), or undefined when none is registered for it.
 */
export function serializerForContentType(contentType: string): Serializer | undefined {
  return byContentType.get(normalizeContentType(contentType));
}

function normalizeContentType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

for (const builtin of [jsonSerializer, yamlSerializer, msgpackSerializer, pickleSerializer]) registerSerializer(builtin);
