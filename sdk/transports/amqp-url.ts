/**
 * @module
 * AMQP URLs as amqplib wants them (a heartbeat unless the URL sets one; kombu's `pyamqp://` spelt
 * `amqp://`), and as errors may show them (no credentials). Shared by the transport and the rpc
 * result backend, which opens its own connection to the same broker.
 */
import { redact } from "../errors.js";

/** `host:port/vhost` with no credentials, for errors and logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return redact(url);
  }
}

export function withHeartbeat(url: string, heartbeat: number): string {
  const u = new URL(url);
  if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(heartbeat));
  // kombu/py-amqp call it pyamqp://; amqplib only knows amqp(s).
  if (u.protocol === "pyamqp:") return "amqp:" + u.toString().slice("pyamqp:".length);
  return u.toString();
}

