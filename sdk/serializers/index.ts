/**
 * @module
 * The serializer registry. Names pick the encoder for tasks; content types pick the decoder for
 * results, as kombu does on the worker side. Like kombu, where msgpack and yaml are extras, json is
 * always here and the others are registered by `registerAllSerializers()` (`all.ts`): the Node
 * entry does it; edge bundles opt in, so a worker script that only sends json stays a few KB.
 */
import { ConfigurationError } from "../errors.js";
import { jsonSerializer } from "./json.js";
import type { Serializer } from "./serializer.js";

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
    const hint = OPTIONAL.has(name) ? ` (${name} is not registered in this bundle: call registerAllSerializers() from "celery-edge/serializers")` : "";
    throw new ConfigurationError(`serializer must be one of ${known}; got ${JSON.stringify(name)}${hint}`, { code: "ERR_INVALID_OPTION" });
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

const OPTIONAL = new Set(["yaml", "msgpack", "pickle"]);

registerSerializer(jsonSerializer);
