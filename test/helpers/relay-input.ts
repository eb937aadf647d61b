/**
 * Inputs and a log for calling `relayRecord` directly: a valid envelope as the SDK writes it, and
 * a logger that keeps its lines.
 */
import { Celery } from "../../sdk/node.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import type { RelayLogger } from "../../functions/relay/relay.js";
import { RecordingTransport } from "./recording-transport.js";

const builder = new Celery({ broker: new RecordingTransport() });

/** A `tasks.echo(1)` envelope for ce.default, as JSON values; `options` are send options. */
export async function validEnvelope(options: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return JSON.parse(encodeEnvelope(await builder.buildMessage("tasks.echo", { args: [1], queue: "ce.default", ...options }))) as Record<string, unknown>;
}

export type RecordingLogger = RelayLogger & { lines: Array<{ level: string; message: string; extra: Record<string, unknown> }> };

export function recordingLogger(): RecordingLogger {
  const lines: RecordingLogger["lines"] = [];
  const at = (level: string) => (message: string, extra: Record<string, unknown>) => lines.push({ level, message, extra });
  return { lines, info: at("info"), warn: at("warn"), error: at("error") };
}
