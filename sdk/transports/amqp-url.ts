/**
 * @module
 * AMQP URLs as amqplib wants them (a heartbeat unless the URL sets one; kombu's `pyamqp://` spelt
 * `amqp://`), and as errors may show them (no credentials). Shared by the transport and the rpc
 * result backend, which opens its own connection to the same broker. A broker may be several URLs,
 * as Celery takes them: one string with `;` between them (`amqp://h1//;amqp://h2//`) or a list.
 */
import { ConfigurationError, redact } from "../errors.js";
import { splitBrokerUrls } from "./failover.js";

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

/** One broker host: the URL amqplib gets and how errors show it. */
export interface AmqpEndpoint {
  readonly url: string;
  readonly where: string;
}

const AMQP_SCHEMES = ["amqp:", "amqps:", "pyamqp:"];

/** The hosts of an AMQP broker setting, each checked (amqp://, amqps:// or pyamqp://) and given the heartbeat. */
export function amqpEndpoints(urls: string | readonly string[], heartbeat: number, what = "invalid broker URL"): AmqpEndpoint[] {
  return splitBrokerUrls(urls).map((url) => {
    const amqp = withHeartbeat(url, heartbeat, what);
    const { protocol, pathname, search, hash } = new URL(url);
    // kombu splits at every `;`: one after the host would be another URL there, never part of a vhost.
    if ((pathname + search + hash).includes(";")) {
      throw new ConfigurationError(`${what} ${describeUrl(url)}: a ";" separates broker URLs; write one in a vhost or query as %3B`);
    }
    if (!AMQP_SCHEMES.includes(protocol.toLowerCase())) {
      throw new ConfigurationError(`${what} ${describeUrl(url)}: every broker URL must be amqp://, amqps:// or pyamqp://, got ${protocol}//`);
    }
    return { url: amqp, where: describeUrl(url) };
  });
}

/** Several hosts as errors show them: `h1:5672/ or h2:5672/`. */
export function describeEndpoints(endpoints: readonly AmqpEndpoint[]): string {
  return endpoints.map((e) => e.where).join(" or ");
}
