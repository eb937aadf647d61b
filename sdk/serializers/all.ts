/**
 * @module
 * kombu's other built-in serializers. Importing this module costs bundle size (the YAML decoder,
 * msgpack, the pickle writer); `registerAllSerializers()` makes them available by name.
 */
import { registerSerializer } from "./index.js";
import { msgpackSerializer } from "./msgpack.js";
import { pickleSerializer } from "./pickle.js";
import { yamlSerializer } from "./yaml.js";

export { msgpackSerializer, pickleSerializer, yamlSerializer };

export function registerAllSerializers(): void {
  for (const s of [yamlSerializer, msgpackSerializer, pickleSerializer]) registerSerializer(s);
}
