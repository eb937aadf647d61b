/**
 * @module
 * Several broker URLs: how Celery writes them, and the order a connect attempt tries them in, as
 * kombu's `Connection` does for Celery's `broker_failover_strategy`: the first URL first; a failed host hands over to the next one
 * the strategy names (`round-robin`: the next in the list, `shuffle`: one at random); a connection
 * that broke is replaced by trying the host it was on again first (kombu's `ensure` reconnects to the
 * current host and moves on only when that fails). One attempt tries each host at most once — kombu
 * would go round again after a pause, the SDK leaves that to its caller, as it does with one URL.
 * Pure: no Node built-ins.
 */
import { ConfigurationError } from "../errors.js";

/**
 * The URLs of a broker setting, as kombu's `Connection` splits them: a string at each `;`, a list as
 * it is, a list entry holding `;` split too. Blanks around an entry are dropped; an empty entry is a
 * ConfigurationError, as is an empty list. Only a `;` that starts another URL (or ends the text)
 * separates: one inside a password stays there (and never shows in an error, as a fragment of it
 * would); `amqpEndpoints` refuses one left in a vhost. A single URL comes back as it is.
 */
export function splitBrokerUrls(urls: string | readonly string[], what = "broker URL"): string[] {
  const list = typeof urls === "string" ? [urls] : urls;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigurationError(`${what} list is empty`);
  const out: string[] = [];
  for (const entry of list) {
    if (typeof entry !== "string") throw new ConfigurationError(`${what} list holds a ${entry === null ? "null" : typeof entry}, not a URL string`);
    out.push(...entry.split(BROKER_URL_SEPARATOR).map((part) => part.trim()));
  }
  if (out.length === 1) return out;
  // Positions only: the text around an empty entry may hold a password.
  const empty = out.indexOf("");
  if (empty >= 0) throw new ConfigurationError(`${what} entry ${empty + 1} of ${out.length} is empty (two ";" in a row, or one at an end)`);
  return out;
}

/** A `;` that starts another URL (or ends the text): Celery's separator, never one inside a password. */
export const BROKER_URL_SEPARATOR = /;(?=\s*(?:[a-z][a-z0-9+.-]*:\/\/|$))/i;

/** Celery's `broker_failover_strategy` names (kombu's `failover_strategies`). */
export type BrokerFailoverStrategy = "round-robin" | "shuffle";

const STRATEGIES: readonly BrokerFailoverStrategy[] = ["round-robin", "shuffle"];

/**
 * The strategy, or a ConfigurationError naming the value. Checked by the transports and backends
 * that use it (Node only), which the app builds when it is made: edge bundles never carry this.
 */
export function checkFailoverStrategy(value: unknown, option = "brokerFailoverStrategy"): BrokerFailoverStrategy {
  if (value === undefined) return "round-robin";
  if (typeof value === "string" && (STRATEGIES as readonly string[]).includes(value)) return value as BrokerFailoverStrategy;
  const shown = typeof value === "string" ? JSON.stringify(value.slice(0, 40)) : typeof value;
  throw new ConfigurationError(`${option} must be "round-robin" or "shuffle", got ${shown}`, { code: "ERR_INVALID_OPTION" });
}

/** Which of `count` hosts to try, connect attempt after connect attempt. */
export class BrokerRotation {
  /** The host last connected to, or being tried; index into the URL list. */
  private current = 0;

  /**
   * @param count how many hosts there are (at least 1)
   * @param strategy the order after a failure
   * @param random a number in [0, 1), as `Math.random` gives: `shuffle`'s choices (tests inject one)
   */
  constructor(
    readonly count: number,
    private readonly strategy: BrokerFailoverStrategy = "round-robin",
    private readonly random: () => number = Math.random,
  ) {}

  /** The host a connect attempt starts with. */
  get first(): number {
    return this.current;
  }

  /**
   * The hosts of one connect attempt, each at most once: the current host first, then one per
   * failure. Pulling the next host records that the last one failed (and makes the next one
   * current), so stop pulling once a host connects: the next attempt starts from it.
   */
  *attempt(): Generator<number, void, undefined> {
    const tried = new Set<number>();
    for (;;) {
      tried.add(this.current);
      yield this.current;
      if (tried.size >= this.count) return;
      this.current = this.after(this.current, tried);
    }
  }

  /**
   * kombu's round-robin is `itertools.cycle` over the list; its shuffle draws a host at random each
   * time (`shufflecycle` shuffles and takes the first), which may draw one already tried. Within one
   * attempt a host already tried is not drawn again, so every host is tried before the attempt fails.
   */
  private after(from: number, tried: ReadonlySet<number>): number {
    if (this.strategy === "round-robin") return (from + 1) % this.count;
    const left: number[] = [];
    for (let i = 0; i < this.count; i++) if (!tried.has(i)) left.push(i);
    const r = this.random();
    const pick = Math.min(left.length - 1, Math.max(0, Math.floor((Number.isFinite(r) ? r : 0) * left.length)));
    return left[pick]!;
  }
}
