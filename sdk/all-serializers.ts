/**
 * @module
 * `celery-edge/serializers`: yaml, msgpack and pickle for bundles that want them (the Node entry
 * registers them already). `registerAllSerializers()` once at startup, or register one by one.
 */
export { registerAllSerializers, yamlSerializer, msgpackSerializer, pickleSerializer } from "./serializers/all.js";
export { jsonSerializer } from "./serializers/json.js";
