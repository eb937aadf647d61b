/**
 * A real TLS endpoint in front of the local RabbitMQ: a throwaway CA and server certificate made
 * with `openssl` in a temporary directory, and Node's `tls` server terminating TLS and forwarding
 * the plaintext AMQP stream to 127.0.0.1:5672 (what stunnel or a load balancer would do).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TlsEndpoint {
  readonly port: number;
  /** PEM file of the CA that signed the server certificate. */
  readonly caFile: string;
  /** TLS handshakes completed so far. */
  readonly handshakes: number;
  close(): Promise<void>;
}

export async function startTlsEndpoint(target = { host: "127.0.0.1", port: 5672 }): Promise<TlsEndpoint> {
  const dir = await mkdtemp(join(tmpdir(), "celery-edge-tls-"));
  const file = (name: string): string => join(dir, name);
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=celery-edge test CA", "-keyout", file("ca.key"), "-out", file("ca.pem")]);
  await run("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", file("server.key"), "-out", file("server.csr")]);
  await writeFile(file("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await run("openssl", [
    "x509", "-req", "-days", "1", "-in", file("server.csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-CAcreateserial",
    "-extfile", file("ext.cnf"), "-out", file("server.pem"),
  ]);
  const [key, cert] = await Promise.all([readFile(file("server.key")), readFile(file("server.pem"))]);

  let handshakes = 0;
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key, cert }, (client) => {
    handshakes++;
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  server.on("tlsClientError", () => {}); // a client that refuses our certificate is one of the tests
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    caFile: file("ca.pem"),
    get handshakes() {
      return handshakes;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
