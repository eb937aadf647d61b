/**
 * @module
 * One app's serializers, by name. Names pick the encoder for tasks; content types pick the decoder
 * for results, as kombu does on the worker side. Like kombu, where msgpack and yaml are extras, json
 * is always there and the others are what the app was given: the Node entry's `Celery` gives it
 * yaml, msgpack and pickle; an edge app passes the ones it wants from `celery-edge/serializers`, so
 * a worker script that only sends json stays a few KB. Nothing is registered globally. Functions,
 * not a class, so a bundle keeps only the lookups it calls.
 */
import { ConfigurationError } from "../errors.js";
import { jsonSerializer } from "./json.js";
import type { Serializer } from "./serializer.js";

/** An app's serializers by name, in the order of their last registration. */
export type Serializers = ReadonlyMap<string, Serializer>;

/** `content_type` without parameters (`; charset=utf-8`), lower case, as kombu compares them. */
export const normalizeContentType = (contentType: string): string => (contentType.split(";")[0] ?? "").trim().toLowerCase();

/** json, then `serializers` in order: a later one replaces an earlier one of the same name, as kombu's registry does. */
export function serializerMap(serializers: Iterable<Serializer> = []): Serializers {
  const byName = new Map<string, Serializer>();
  for (const s of [jsonSerializer, ...serializers]) {
    if (!s?.name || !s.contentType) throw new ConfigurationError("a serializer needs a name and a contentType", { code: "ERR_INVALID_OPTION" });
    byName.delete(s.name);
    byName.set(s.name, s);
  }
  return byName;
}

/** The serializer called `name`; throws `ConfigurationError` (ERR_INVALID_OPTION) for unknown names. */
export function serializerNamed(serializers: Serializers, name: string): Serializer {
  const serializer = serializers.get(name);
  if (!serializer) {
    const hint = ["yaml", "msgpack", "pickle"].includes(name) ? ` (pass serializers: [${name}Serializer] from "celery-edge/serializers" to this app)` : "";
    throw new ConfigurationError(`serializer must be one of ${[...serializers.keys()].join(", ")}; got ${JSON.stringify(name)}${hint}`, { code: "ERR_INVALID_OPTION" });
  }
  return serializer;
}

/**
 * The serializer that decodes bodies of `contentType` (parameters such as `; charset=utf-8` and
 * letter case are ignored): the last one registered for it, or undefined when there is none.
 */
export function serializerForContentType(serializers: Serializers, contentType: string): Serializer | undefined {
  const type = normalizeContentType(contentType);
  return [...serializers.values()].findLast((s) => normalizeContentType(s.contentType) === type);
}
