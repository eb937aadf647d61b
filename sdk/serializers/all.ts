/**
 * @module
 * kombu's built-in serializers. Importing this module costs bundle size (msgpack, the pickle
 * writer, the YAML emitter; the YAML reader loads on first use); an app has the ones it is given:
 * `new Celery({ broker, serializers: [msgpackSerializer] })`, or all of them, as the Node entry does.
 */
import type { Serializer } from "./serializer.js";
import { jsonSerializer } from "./json.js";
import { msgpackSerializer } from "./msgpack.js";
import { pickleSerializer } from "./pickle.js";
import { yamlSerializer } from "./yaml.js";

export { jsonSerializer, msgpackSerializer, pickleSerializer, yamlSerializer };

/** json, yaml, msgpack and pickle: what kombu registers by default. */
export const allSerializers: readonly Serializer[] = [jsonSerializer, yamlSerializer, msgpackSerializer, pickleSerializer];
