/**
 * A TCP proxy on 127.0.0.1 in front of the real RabbitMQ, so tests can make a connection go silent
 * the way a Lambda thawed after a freeze finds it: the socket still looks open, nothing answers.
 */
import net from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections closed at once because the proxy was down. */
  readonly refused: number;
  /** Existing connections stop forwarding in both directions (sockets stay open); new ones work. */
  freezeExisting(): void;
  /** While down, open connections are cut and new ones closed at once (an unreachable broker). */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export interface TcpProxyOptions {
  /** Written to `log` with each connection: `<name> accepted` or `<name> refused`. */
  name?: string;
  /** Shared by several proxies, it shows the order clients tried them in. */
  log?: string[];
}

export async function startTcpProxy(target: { host: string; port: number }, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; frozen: boolean }>();
  let accepted = 0;
  let refused = 0;
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      refused++;
      options.log?.push(`${options.name ?? "proxy"} refused`);
      client.destroy();
      return;
    }
    accepted++;
    options.log?.push(`${options.name ?? "proxy"} accepted`);
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (d) => {
      if (!pair.frozen) upstream.write(d);
    });
    upstream.on("data", (d) => {
      if (!pair.frozen) client.write(d);
    });
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get accepted() {
      return accepted;
    },
    get refused() {
      return refused;
    },
    setDown(value: boolean) {
      down = value;
      if (down) {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
      }
    },
    freezeExisting() {
      for (const p of pairs) p.frozen = true;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
