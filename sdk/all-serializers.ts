/**
 * @module
 * `celery-edge/serializers`: yaml, msgpack and pickle for bundles that want them (the Node entry's
 * `Celery` has them already). Pass them to the app: `new Celery({ broker, serializers: [msgpackSerializer] })`.
 */
export { allSerializers, jsonSerializer, msgpackSerializer, pickleSerializer, yamlSerializer } from "./serializers/all.js";
