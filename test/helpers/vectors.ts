/**
 * Golden messages captured from Celery 5.2.6 (../shared/vectors beside the repository).
 */
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const VECTOR_DIR = fileURLToPath(new URL("../../../shared/vectors/", import.meta.url));

export interface Vector {
  name: string;
  task_protocol: 1 | 2;
  apply_async: string;
  app_conf_overrides: Record<string, unknown>;
  published_at_unix: number;
  exchange: string;
  routing_key: string;
  properties: Record<string, unknown> & { headers: Record<string, unknown>; reply_to: string; expiration: string | null };
  headers_typed: Array<[string, { type: string; value: unknown }]>;
  content_header_frame_payload_base64: string;
  body_base64: string;
  body_text?: string;
  body_decoded: unknown;
}

export function loadVector(name: string): Vector {
  return JSON.parse(readFileSync(`${VECTOR_DIR}${name}.json`, "utf8")) as Vector;
}

export function vectorNames(): string[] {
  return readdirSync(VECTOR_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -5));
}
