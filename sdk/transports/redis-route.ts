/**
 * @module
 * Where a message goes on a kombu Redis broker (universal). kombu's producer asks its own process
 * what type an exchange has and takes `direct` for one it never declared, so a publish to a topic
 * exchange it did not declare matches nothing and is dropped without a word. Here the type comes
 * from what is known — the message's own declaration, the app's queues, else the patterns the
 * workers stored with their bindings — and a message no binding takes is refused, not dropped.
 *
 * Topic matching is kombu's (`TopicExchange.key_to_pattern` + `re.match`), not AMQP's: `*` stands
 * for one or more characters ending in a non-dot (it can span dots), `#` for any run of characters
 * (`video.#` needs the dot: it takes `video.x`, not `video`). It is run as a small automaton over
 * the binding's key, never as a regex built from stored data: a binding set anyone can write to
 * must not be able to stall the producer.
 */
import type { ExchangeType } from "../routing.js";
import type { TaskMessage } from "../protocol/message.js";
import { parseBindingMember, type Binding, type RedisLayout } from "./redis-wire.js";

/** One step of a compiled topic key: a character (or any but `\n`, or any but `.`), optionally repeated. */
interface Step {
  test: (c: string) => boolean;
  star: boolean;
}

const ANY = (c: string): boolean => c !== "\n"; // Python's `.` without DOTALL
const NOT_DOT = (c: string): boolean => c !== ".";

/** kombu's regex for a topic binding key, as steps; null where Python's `re` would refuse the regex. */
function compileTopic(key: string): Step[] | null {
  const steps: Step[] = [];
  const words = key.split(".");
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (i > 0) steps.push({ test: (c) => c === ".", star: false });
    if (word === "*") steps.push({ test: ANY, star: true }, { test: NOT_DOT, star: false });
    else if (word === "#") steps.push({ test: ANY, star: true });
    else {
      for (const ch of word) {
        if (ch !== "*") {
          steps.push({ test: (c) => c === ch, star: false });
          continue;
        }
        // Inside a word `*` stays a regex quantifier on what precedes it; Python refuses "nothing to repeat" and "multiple repeat".
        const last = steps[steps.length - 1];
        if (!last || last.star) return null;
        last.star = true;
      }
    }
  }
  return steps;
}

const compiled = new Map<string, Step[] | null>();

function topicSteps(key: string): Step[] | null {
  let steps = compiled.get(key);
  if (steps === undefined) {
    steps = compileTopic(key);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(key, steps);
  }
  return steps;
}

/** Whether all of `text` matches `steps`: a set-of-positions simulation, linear in both. */
function run(steps: Step[], text: string): boolean {
  let at = new Set<number>();
  const close = (set: Set<number>, i: number): void => {
    // A repeated step may be skipped.
    while (i <= steps.length && !set.has(i)) {
      set.add(i);
      if (i < steps.length && steps[i]!.star) i++;
      else break;
    }
  };
  close(at, 0);
  for (const c of text) {
    const next = new Set<number>();
    for (const i of at) {
      const s = steps[i];
      if (!s || !s.test(c)) continue;
      if (s.star) close(next, i);
      else close(next, i + 1);
    }
    if (next.size === 0) return false;
    at = next;
  }
  return at.has(steps.length);
}

/** kombu's topic match of `routingKey` against a binding key. */
export function topicMatches(bindingKey: string, routingKey: string): boolean {
  const steps = topicSteps(bindingKey);
  if (!steps) return false;
  // Python's `$` also matches before a final newline.
  return run(steps, routingKey) || (routingKey.endsWith("\n") && run(steps, routingKey.slice(0, -1)));
}

/** An exchange's bindings as read from its set; members that are not kombu's are left out. */
export function parseTable(layout: RedisLayout, members: readonly string[]): Binding[] {
  const table: Binding[] = [];
  for (const m of members) {
    const b = parseBindingMember(layout, m);
    if (b) table.push(b);
  }
  return table;
}

/** The exchange's type: as known to the producer, else `topic` when any stored binding has a pattern, else `direct`. */
export function exchangeTypeOf(known: ExchangeType | undefined, table: readonly Binding[]): ExchangeType {
  return known ?? (table.some((b) => b.pattern !== "") ? "topic" : "direct");
}

/** The queues a message to a direct or topic exchange goes to (kombu's `lookup`: a set, so each queue once). */
export function lookupQueues(type: ExchangeType, table: readonly Binding[], routingKey: string): string[] {
  const queues = new Set<string>();
  for (const b of table) {
    if (type === "topic" ? topicMatches(b.routingKey, routingKey) : b.routingKey === routingKey) queues.add(b.queue);
  }
  return [...queues];
}

/**
 * The exchange types the producer knows without asking Redis: its queues' (`queues`/routes config)
 * and the default exchange's.
 */
export function knownExchangeTypes(config: {
  queues?: Readonly<Record<string, { exchange?: string; exchangeType?: ExchangeType }>>;
  defaultQueue?: string;
  defaultExchange?: string;
  defaultExchangeType?: ExchangeType;
} = {}): Map<string, ExchangeType> {
  const types = new Map<string, ExchangeType>();
  const defaultExchange = config.defaultExchange ?? config.defaultQueue ?? "celery";
  if (defaultExchange) types.set(defaultExchange, config.defaultExchangeType ?? "direct");
  for (const [name, q] of Object.entries(config.queues ?? {})) {
    const exchange = q.exchange ?? name;
    if (exchange) types.set(exchange, q.exchangeType ?? "direct");
  }
  return types;
}

/** The type a message's exchange has, as far as the producer knows: its own declaration first, then config. */
export function declaredTypeOf(m: TaskMessage, config: ReadonlyMap<string, ExchangeType>): ExchangeType | undefined {
  if (m.declare && m.declare.exchange === m.exchange) return m.declare.exchangeType;
  return config.get(m.exchange);
}

/**
 * Pushes to a named exchange in one round trip, atomically, with no matching inside Redis (a
 * pattern anyone can store must not stall the server). The producer routes against the table it
 * last read, and the script pushes only if the set is still exactly that table; otherwise it
 * pushes nothing and returns the current members, to route against again. The producer's own
 * binding `SADD`s go ahead of it on the same connection, so they are part of the table it checks.
 *
 * KEYS[1] the binding set. ARGV: m (-1: never read), the m members expected, then (list key,
 * message) pairs. Returns 1 when it pushed, else the set's members.
 */
export const ROUTE_SCRIPT = `local m = tonumber(ARGV[1])
local same = m >= 0 and redis.call('SCARD', KEYS[1]) == m
if same then
  for i = 2, m + 1 do
    if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then same = false break end
  end
end
if not same then return redis.call('SMEMBERS', KEYS[1]) end
for i = m + 2, #ARGV, 2 do redis.call('LPUSH', ARGV[i], ARGV[i + 1]) end
return 1`;
