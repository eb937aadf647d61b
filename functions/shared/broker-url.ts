/**
 * @module
 * Resolves the broker URL from a Secrets Manager secret: a bare URL, `{"url": …}`, or Amazon MQ
 * style components (`"scheme": "rediss"` or `"redis"` for a Redis broker, with `db` for its
 * database). Fetched once per container.
 */
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { ConfigurationError } from "../../sdk/errors.js";

export function brokerUrlFromSecret(secret: string): string {
  const text = secret.trim();
  if (/^(amqps?|pyamqp|rediss?):\/\//.test(text)) return text;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch {
    throw new ConfigurationError("broker secret is neither an amqp(s):// or redis(s):// URL nor JSON");
  }
  if (typeof o.url === "string") return o.url;
  const { username, password, host } = o;
  if (typeof username !== "string" || typeof password !== "string" || typeof host !== "string") {
    throw new ConfigurationError('broker secret JSON needs "url", or "username", "password" and "host"');
  }
  const scheme = typeof o.scheme === "string" ? o.scheme : "amqps";
  if (scheme === "redis" || scheme === "rediss") {
    const db = o.db ?? 0;
    if (!Number.isSafeInteger(db) || (db as number) < 0) throw new ConfigurationError('broker secret JSON "db" must be a database number');
    const user = username === "" || username === "default" ? "" : encodeURIComponent(username);
    return `${scheme}://${user}:${encodeURIComponent(password)}@${host}:${o.port ?? 6379}/${db as number}`;
  }
  const port = o.port ?? (scheme === "amqps" ? 5671 : 5672);
  const vhost = typeof o.vhost === "string" ? o.vhost : "/";
  return `${scheme}://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(vhost)}`;
}

export async function fetchBrokerUrl(secretArn: string, client = new SecretsManagerClient({})): Promise<string> {
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  if (!out.SecretString) throw new ConfigurationError("broker secret has no SecretString");
  return brokerUrlFromSecret(out.SecretString);
}
