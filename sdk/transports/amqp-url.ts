/**
 * @module
 * AMQP URLs as amqplib wants them (a heartbeat unless the URL sets one; kombu's `pyamqp://` spelt
 * `amqp://`), and as errors may show them (no credentials). Shared by the transport and the rpc
 * result backend, which opens its own connection to the same broker.
 */
import { ConfigurationError, redact } from "../errors.js";

/** `host:port/vhost` with no credentials, for errors and logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    // A password with an unencoded `/` ends the host early and lands in the path: mask that too.
    return redact(`${u.protocol}//${u.host}${u.pathname}`);
  } catch {
    return redact(url);
  }
}

/**
 * The URL amqplib gets, or a ConfigurationError that shows no credentials. An `@` after the host
 * means a password (or user name) that holds an unencoded `/`, `?` or `#`: amqplib would connect to
 * the wrong host with part of the password as the vhost, which the broker then echoes in errors.
 * A vhost holding `@` is written `%40`.
 */
export function withHeartbeat(url: string, heartbeat: number, what = "invalid broker URL"): string {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // No cause: the URL parser's error carries the raw input, password included.
  }
  if (!u || /@/.test(u.pathname + u.search + u.hash)) {
    const hint = url.includes("@") ? "; percent-encode the user name and password (encodeURIComponent), and an @ in the vhost as %40" : "";
    throw new ConfigurationError(`${what} ${redact(url)}${hint}`);
  }
  if (!u.searchParams.has("heartbeat")) u.searchParams.set("heartbeat", String(heartbeat));
  // kombu/py-amqp call it pyamqp://; amqplib only knows amqp(s).
  if (u.protocol === "pyamqp:") return "amqp:" + u.toString().slice("pyamqp:".length);
  return u.toString();
}
