/**
 * @module
 * Reading a result: Celery's `result_accept_content` (which formats a result may come in) and the
 * one path every backend decodes through. A result is read only in a format the app accepts and
 * only with the serializer its backend names — redis:// the configured `resultSerializer`, rpc://
 * the message's content type — never by guessing from the bytes, so a store that holds a pickle
 * cannot reach the pickle reader of an app that expects JSON. Every failure is a
 * `ResultDecodeError` naming the task. Runtime-neutral: no Node built-ins.
 */
import { ConfigurationError, ResultDecodeError } from "../errors.js";
import { allSerializers } from "../serializers/all.js";
import { decodeJson, jsonSerializer } from "../serializers/json.js";
import { checkInputSize, type DecodeLimits, type ResolvedDecodeLimits } from "../serializers/limits.js";
import { normalizeContentType, serializerForContentType, serializerMap, serializerNamed, type Serializers } from "../serializers/registry.js";
import type { Serializer } from "../serializers/serializer.js";
import type { ResultMeta } from "./backend.js";
import { metaFromStored } from "./exceptions.js";

/** kombu's built-in serializers by name, known even where a bundle has not registered them. */
const BUILTIN_CONTENT_TYPES: Readonly<Record<string, string>> = {
  json: "application/json",
  yaml: "application/x-yaml",
  msgpack: "application/x-msgpack",
  pickle: "application/x-python-serialize",
};

/**
 * A resolved `resultAccept`: the accepted content types, the list as given (for messages), and the
 * app's serializers that decode them.
 */
export interface ResultAccept {
  readonly contentTypes: ReadonlySet<string>;
  readonly names: readonly string[];
  readonly serializers: Serializers;
}

export { normalizeContentType };

/** What a backend built outside an app decodes with: kombu's four. */
export const builtinSerializers = (): Serializers => serializerMap(allSerializers);

/** The content type of a serializer name ("json") or a content type given as such ("application/json"). */
export function contentTypeOf(nameOrContentType: string, serializers: Serializers = builtinSerializers()): string {
  if (nameOrContentType.includes("/")) return normalizeContentType(nameOrContentType);
  const builtin = BUILTIN_CONTENT_TYPES[nameOrContentType];
  return normalizeContentType(builtin ?? serializerNamed(serializers, nameOrContentType).contentType);
}

/**
 * The app's default: the workers' `resultSerializer` when one is configured (naming it is choosing
 * to read it), else json, Celery's `accept_content` default.
 */
export function defaultResultAccept(resultSerializer?: string): string[] {
  return [resultSerializer ?? "json"];
}

/**
 * Checks and resolves `resultAccept`, kombu's `prepare_accept_content`: serializer names (json,
 * yaml, msgpack, pickle, or a custom one in `serializers`) and content types. Throws
 * `ConfigurationError` (ERR_INVALID_OPTION) for anything else.
 */
export function resolveResultAccept(accept: readonly string[], serializers: Serializers = builtinSerializers()): ResultAccept {
  if (!Array.isArray(accept) || accept.length === 0 || !accept.every((a) => typeof a === "string" && a.trim() !== "")) {
    throw new ConfigurationError(`resultAccept must be a non-empty list of serializer names or content types, e.g. ["json"]; got ${JSON.stringify(accept)}`, {
      code: "ERR_INVALID_OPTION",
    });
  }
  let contentTypes: Set<string>;
  try {
    contentTypes = new Set(accept.map((a) => contentTypeOf(a, serializers)));
  } catch (err) {
    throw new ConfigurationError(`resultAccept: ${err instanceof Error ? err.message : String(err)}`, { code: "ERR_INVALID_OPTION", cause: err });
  }
  return Object.freeze({ contentTypes, names: Object.freeze([...accept]), serializers });
}

const describeTask = (taskId: string): string => (taskId === "" ? "a task with no id" : `task ${taskId}`);

/** The normalized content type, if `accept` allows it; a `ResultDecodeError` naming the task if not. */
export function checkAccepted(contentType: string, taskId: string, accept: ResultAccept): string {
  const type = normalizeContentType(contentType);
  if (!accept.contentTypes.has(type)) {
    throw new ResultDecodeError(
      `the result of ${describeTask(taskId)} is ${type || "of no content type"}, which resultAccept (${accept.names.join(", ")}) does not allow; ` +
        `add it to resultAccept only if the workers are trusted to send it`,
      taskId || undefined,
    );
  }
  return type;
}

/**
 * A decoder that takes limits. The built-in yaml, msgpack and pickle serializers' own `decode` do;
 * the json one stays plain `JSON.parse` (it is in every edge bundle), so results use `decodeJson`;
 * a custom serializer's decode ignores them.
 */
type LimitedDecode = (bytes: Uint8Array, limits?: DecodeLimits) => unknown;

function limitedDecoder(serializer: Serializer): LimitedDecode {
  if (serializer === jsonSerializer) return decodeJson;
  return (bytes, limits) => (serializer.decode as LimitedDecode).call(serializer, bytes, limits);
}

/**
 * Decodes one result body of `contentType` into a task meta. `taskId` is the id the backend
 * received it for (the redis key, the rpc correlation id). Throws `ResultDecodeError` when the
 * format is not accepted, no serializer reads it, the serializer refuses the bytes (malformed, or
 * over `limits`), or what it holds is no Celery task meta. A promise only when the serializer must
 * load its reader first (YAML, once).
 */
export function decodeResultMeta(
  bytes: Uint8Array,
  contentType: string,
  taskId: string,
  accept: ResultAccept,
  limits: ResolvedDecodeLimits,
): ResultMeta | Promise<ResultMeta> {
  const type = checkAccepted(contentType, taskId, accept);
  const task = describeTask(taskId);
  const serializer = serializerForContentType(accept.serializers, type);
  if (!serializer) throw new ResultDecodeError(`the result of ${task} is ${type}, and this app has no serializer for it`, taskId || undefined);
  const loading = serializer.load?.();
  if (!loading) return decodeWith(serializer, bytes, taskId, limits);
  return loading.then(
    () => decodeWith(serializer, bytes, taskId, limits),
    (err: unknown) => {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ResultDecodeError(`cannot load the ${serializer.name} reader for the result of ${task}: ${reason}`, taskId || undefined, { cause: err });
    },
  );
}

function decodeWith(serializer: Serializer, bytes: Uint8Array, taskId: string, limits: ResolvedDecodeLimits): ResultMeta {
  const task = describeTask(taskId);
  try {
    checkInputSize(bytes.length, limits, serializer.name);
    const decoded = limitedDecoder(serializer)(bytes, limits);
    return metaFromStored(decoded, taskId);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ResultDecodeError(`cannot decode the result of ${task} as ${serializer.name}: ${reason}`, taskId || undefined, { cause: err });
  }
}
