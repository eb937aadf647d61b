/**
 * @module
 * amqplib and node-redis are optional peer dependencies: an app that only publishes through the
 * SQS relay, or never waits for results, does not need them installed. They are imported when a
 * connection is first opened, and a missing one is reported as the package to install.
 */
import { ConfigurationError } from "./errors.js";

export async function importPeer<T>(name: string, neededFor: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && String((err as Error).message).includes(name)) {
      throw new ConfigurationError(`${neededFor} needs the optional dependency "${name}": npm install ${name}`, { cause: err });
    }
    throw err;
  }
}
