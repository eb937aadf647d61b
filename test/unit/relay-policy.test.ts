/**
 * The relay policy (functions/shared/policy.ts): what a sender to the intake queue may put on the
 * broker. Pure functions, no services: validation at cold start, AMQP topic matching (cross-checked
 * against a reference written from RabbitMQ's own `split_topic_key`/`match_words`), the per-record
 * verdict, and the relay's small helpers for senders, poison and backoff (functions/relay/relay.ts).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { backoffSeconds, isPoison, senderOf } from "../../functions/relay/relay.js";
import {
  DEFAULT_RELAY_POLICY,
  PICKLE_CONTENT_TYPE,
  checkTask,
  isAdmin,
  isPrincipal,
  mayRevoke,
  policyFromEnv,
  resolvePolicy,
  taskGlob,
  topicPattern,
  type PolicyRequest,
  type RelayPolicy,
} from "../../functions/shared/policy.js";
import {
  ConfigurationError,
  ConnectionError,
  EnvelopeError,
  PayloadTooLargeError,
  PolicyError,
  PublishError,
  SerializationError,
  TimeoutError,
} from "../../sdk/errors.js";
import { sqsRecord } from "../helpers/sqs-record.js";

/** The error `act` throws (fails the test when it throws nothing). */
function thrown(act: () => unknown): Error {
  try {
    act();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw, got none");
}

/** A task as the relay would ask the policy about it: the default queue, JSON, a plain user. */
function request(over: Partial<PolicyRequest> = {}): PolicyRequest {
  return { exchange: "", routingKey: "celery", task: "tasks.add", contentType: "application/json", senderId: "AIDAPLAIN", ...over };
}

/** The verdict's reason, or null when the task may pass. */
const reasonOf = (policy: RelayPolicy, over: Partial<PolicyRequest>): string | null => {
  const verdict = checkTask(resolvePolicy(policy), request(over));
  return "refused" in verdict ? verdict.refused : null;
};

const CELERY_DECLARATION = { queue: "celery", exchange: "celery", exchangeType: "direct", routingKey: "celery", durable: true };

describe("resolvePolicy fills in the safe defaults", () => {
  it("allows only the queue celery, declared as Celery declares it", () => {
    // Act
    const policy = resolvePolicy({});

    // Assess
    expect([...policy.queues.entries()]).toEqual([["celery", CELERY_DECLARATION]]);
  });

  it("opens no exchange", () => {
    // Act
    const policy = resolvePolicy({});

    // Assess
    expect(policy.exchanges).toEqual([]);
  });

  it("allows JSON and no other content type", () => {
    // Act
    const policy = resolvePolicy({});

    // Assess
    expect([...policy.contentTypes]).toEqual(["application/json"]);
  });

  it("accepts revokes, names no admin and no sender rule", () => {
    // Act
    const policy = resolvePolicy({});

    // Assess
    expect([policy.revokes, policy.admins, policy.senders]).toEqual([true, [], []]);
  });

  it("allows any task name", () => {
    // Act
    const policy = resolvePolicy({});

    // Assess
    expect(["tasks.add", "a", "x.y.z-1"].map((t) => policy.tasks.some((m) => m.test(t)))).toEqual([true, true, true]);
  });

  it("treats a call without a policy as the empty policy", () => {
    // Act
    const none = resolvePolicy();

    // Assess
    expect(none.source).toEqual(resolvePolicy({}).source);
  });

  it("reports the policy with its defaults as the source for the cold-start log", () => {
    // Act
    const policy = resolvePolicy({ revokes: false });

    // Assess
    expect(policy.source).toEqual({ ...DEFAULT_RELAY_POLICY, revokes: false });
  });

  it("treats a key set to undefined as the default, like an omitted key", () => {
    // Arrange
    const input = { queues: undefined, exchanges: undefined, tasks: undefined, contentTypes: undefined, dangerouslyAllowPickle: undefined, revokes: undefined, admins: undefined, senders: undefined };

    // Act
    const policy = resolvePolicy(input);

    // Assess
    expect(policy.source).toEqual(DEFAULT_RELAY_POLICY);
  });

  it("keeps a queue's declare options (durability and arguments)", () => {
    // Act
    const policy = resolvePolicy({ queues: [{ name: "video", declare: { durable: false, arguments: { "x-max-priority": 10 } } }] });

    // Assess
    expect(policy.queues.get("video")).toEqual({ queue: "video", exchange: "video", exchangeType: "direct", routingKey: "video", durable: false, arguments: { "x-max-priority": 10 } });
  });

  it("declares nothing for a queue listed with declare false", () => {
    // Act
    const policy = resolvePolicy({ queues: [{ name: "existing", declare: false }] });

    // Assess
    expect(policy.queues.get("existing")).toBeNull();
  });

  it("declares an exchange and its bound queue as the rule says", () => {
    // Act
    const policy = resolvePolicy({
      exchanges: [{ exchange: "media", routingKeys: ["video.#"], declare: { type: "topic", queue: { name: "video", bindingKey: "video.#" } } }],
    });

    // Assess
    expect(policy.exchanges[0]!.declare).toEqual({ exchange: "media", exchangeType: "topic", routingKey: "video.#", durable: true, queue: "video" });
  });
});

describe("resolvePolicy refuses a malformed policy, naming the path", () => {
  // Each input is wrong in exactly one place; the error must point there, not at its parent.
  const cases: Array<[string, unknown, string]> = [
    ["a policy that is not an object", null, "(top level)"],
    ["a policy that is an array", [], "(top level)"],
    ["queues that are not an array", { queues: "celery" }, "queues"],
    ["an empty queue name", { queues: [{ name: "" }] }, "queues[0].name"],
    ["a queue name with a space, second in the list", { queues: [{ name: "celery" }, { name: "bad name" }] }, "queues[1].name"],
    ["a queue rule that is a string", { queues: ["celery"] }, "queues[0]"],
    ["a queue declare that is a string", { queues: [{ name: "q", declare: "yes" }] }, "queues[0].declare"],
    ["a queue durability that is not a boolean", { queues: [{ name: "q", declare: { durable: "yes" } }] }, "queues[0].declare.durable"],
    ["a queue argument that is an object", { queues: [{ name: "q", declare: { arguments: { "x-max-priority": {} } } }] }, "queues[0].declare.arguments.x-max-priority"],
    ["a queue argument named __proto__", { queues: [{ name: "q", declare: { arguments: JSON.parse('{"__proto__": 1}') } }] }, "queues[0].declare.arguments.__proto__"],
    ["a quorum queue with a priority", { queues: [{ name: "q", declare: { arguments: { "x-queue-type": "quorum", "x-max-priority": 10 } } }] }, "queues[0].declare"],
    ["a non-durable quorum queue", { queues: [{ name: "q", declare: { durable: false, arguments: { "x-queue-type": "quorum" } } }] }, "queues[0].declare"],
    ["a stream queue, which Celery workers cannot consume", { queues: [{ name: "q", declare: { arguments: { "x-queue-type": "stream" } } }] }, "queues[0].declare"],
    ["a bound quorum queue with a priority", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", queue: { name: "q", bindingKey: "#", arguments: { "x-queue-type": "quorum", "x-max-priority": 5 } } } }] }, "exchanges[0].declare.queue"],
    ["the default exchange as an exchange rule", { exchanges: [{ exchange: "", routingKeys: ["#"] }] }, "exchanges[0].exchange"],
    ["routing keys that are a string", { exchanges: [{ exchange: "x", routingKeys: "#" }] }, "exchanges[0].routingKeys"],
    ["an empty routing-key pattern", { exchanges: [{ exchange: "x", routingKeys: ["a", ""] }] }, "exchanges[0].routingKeys[1]"],
    ["a routing-key pattern over 255 characters", { exchanges: [{ exchange: "x", routingKeys: ["a".repeat(256)] }] }, "exchanges[0].routingKeys[0]"],
    ["an unknown exchange type", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "x-delayed-message" } }] }, "exchanges[0].declare.type"],
    ["an exchange durability that is not a boolean", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", durable: "no" } }] }, "exchanges[0].declare.durable"],
    ["a bound queue with a bad name", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", queue: { name: "a b", bindingKey: "#" } } }] }, "exchanges[0].declare.queue.name"],
    ["a binding key that is a number", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", queue: { name: "q", bindingKey: 5 } } }] }, "exchanges[0].declare.queue.bindingKey"],
    ["tasks that are a string", { tasks: "tasks.*" }, "tasks"],
    ["an empty task glob", { tasks: [""] }, "tasks[0]"],
    ["an unknown content type", { contentTypes: ["text/plain"] }, "contentTypes[0]"],
    ["pickle listed as a content type", { contentTypes: ["application/json", PICKLE_CONTENT_TYPE] }, "contentTypes[1]"],
    ["a pickle switch that is not a boolean", { dangerouslyAllowPickle: "yes" }, "dangerouslyAllowPickle"],
    ["revokes that is a number", { revokes: 1 }, "revokes"],
    ["an admin that is not a principal", { admins: ["AROA ADMIN"] }, "admins[0]"],
    ["a sender rule without a principal", { senders: [{ queues: ["celery"] }] }, "senders[0].principal"],
    ["a bad queue name in a sender rule", { senders: [{ principal: "AIDA1", queues: ["bad name"] }] }, "senders[0].queues[0]"],
    ["a sender's exchange rule that declares", { senders: [{ principal: "AIDA1", exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic" } }] }] }, "senders[0].exchanges[0].declare"],
    ["an empty task glob in a sender rule", { senders: [{ principal: "AIDA1", tasks: [""] }] }, "senders[0].tasks[0]"],
    ["a sender's revokes that is a string", { senders: [{ principal: "AIDA1", revokes: "no" }] }, "senders[0].revokes"],
  ];

  it.each(cases)("refuses %s at its path", (_what, input, path) => {
    // Act
    const err = thrown(() => resolvePolicy(input));

    // Assess
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as ConfigurationError).code).toBe("ERR_CONFIGURATION");
    expect(err.message).toContain(`relay policy: ${path} `);
  });

  const unknownKeys: Array<[string, unknown, string]> = [
    ["at the top level", { queue: [{ name: "celery" }] }, "policy.queue"],
    ["in a queue rule", { queues: [{ name: "celery", durable: true }] }, "queues[0].durable"],
    ["in a queue's declare options", { queues: [{ name: "q", declare: { exclusive: true } }] }, "queues[0].declare.exclusive"],
    ["in an exchange rule", { exchanges: [{ exchange: "x", routingKeys: ["#"], type: "topic" }] }, "exchanges[0].type"],
    ["in an exchange's declare", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", autoDelete: true } }] }, "exchanges[0].declare.autoDelete"],
    ["in a bound queue", { exchanges: [{ exchange: "x", routingKeys: ["#"], declare: { type: "topic", queue: { name: "q", bindingKey: "#", durable: true } } }] }, "exchanges[0].declare.queue.durable"],
    ["in a sender rule", { senders: [{ principal: "AIDA1", contentTypes: ["application/x-yaml"] }] }, "senders[0].contentTypes"],
  ];

  it.each(unknownKeys)("refuses an unknown key %s, naming it", (_where, input, path) => {
    // Act
    const err = thrown(() => resolvePolicy(input));

    // Assess
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain(`relay policy: ${path} is not a policy field`);
  });

  it("shows a long offending value cut to 120 characters", () => {
    // Act
    const err = thrown(() => resolvePolicy({ tasks: ["x".repeat(5000)] }));

    // Assess
    expect(err.message).toContain("tasks[0]");
    expect(err.message.length).toBeLessThan(300);
  });
});

describe("resolvePolicy refuses Celery's control plane and the broker's own names", () => {
  it.each(["celery.pidbox", "worker1.celery.pidbox", "0f1e2d3c.reply.celery.pidbox", "celeryev.4b1c", "amq.gen-JzTY20BRgKO"])(
    "refuses the queue %s",
    (name) => {
      // Act
      const err = thrown(() => resolvePolicy({ queues: [{ name }] }));

      // Assess
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err.message).toMatch(/relay policy: queues\[0\]\.name .*which no policy can open/);
    },
  );

  it.each(["celery.pidbox", "reply.celery.pidbox", "x.pidbox", "celeryev", "celeryev.x", "amq.direct", "amq.topic", "amq.rabbitmq.trace"])(
    "refuses the exchange %s",
    (exchange) => {
      // Act
      const err = thrown(() => resolvePolicy({ exchanges: [{ exchange, routingKeys: ["#"] }] }));

      // Assess
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(err.message).toMatch(/relay policy: exchanges\[0\]\.exchange .*which no policy can open/);
    },
  );

  // Bound to a task exchange, a control client's reply mailbox would receive whatever senders publish.
  it("refuses a control-plane queue declared and bound by an exchange rule", () => {
    // Act
    const err = thrown(() =>
      resolvePolicy({ exchanges: [{ exchange: "tasks", routingKeys: ["#"], declare: { type: "topic", queue: { name: "0f1e2d3c.reply.celery.pidbox", bindingKey: "#" } } }] }),
    );

    // Assess
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("exchanges[0].declare.queue.name");
  });
});

describe("resolvePolicy lets pickle through only by its dangerous switch", () => {
  it("adds pickle when dangerouslyAllowPickle is true", () => {
    // Act
    const policy = resolvePolicy({ dangerouslyAllowPickle: true });

    // Assess
    expect([...policy.contentTypes].sort()).toEqual(["application/json", PICKLE_CONTENT_TYPE].sort());
  });

  it("leaves pickle out when the switch is off, whatever else is allowed", () => {
    // Act
    const policy = resolvePolicy({ contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"], dangerouslyAllowPickle: false });

    // Assess
    expect(policy.contentTypes.has(PICKLE_CONTENT_TYPE)).toBe(false);
  });
});

/**
 * AMQP topic matching written differently from the module: RabbitMQ's `split_topic_key` (an empty
 * key has no words) and its recursive `match_words` (`#` either stops or eats one more word).
 */
function referenceTopicMatch(pattern: string, key: string): boolean {
  const words = (s: string): string[] => (s === "" ? [] : s.split("."));
  const match = (p: readonly string[], k: readonly string[]): boolean => {
    if (p.length === 0) return k.length === 0;
    const [head, ...rest] = p;
    if (head === "#") return match(rest, k) || (k.length > 0 && match(p, k.slice(1)));
    return k.length > 0 && (head === "*" || head === k[0]) && match(rest, k.slice(1));
  };
  return match(words(pattern), words(key));
}

describe("topicPattern matches as an AMQP topic exchange does", () => {
  const cases: Array<[string, string, boolean]> = [
    ["celery", "celery", true],
    ["celery", "celeryx", false],
    ["a.b", "axb", false],
    ["*", "video", true],
    ["*", "video.compress", false],
    ["a.*.c", "a.b.c", true],
    ["a.*.c", "a.c", false],
    ["a.*.c", "a.b.b.c", false],
    ["#", "a", true],
    ["#", "a.b.c.d", true],
    ["#", "", true],
    ["a.#", "a", true],
    ["a.#", "a.b.c", true],
    ["a.#", "b.a", false],
    ["a.#.b", "a.b", true],
    ["a.#.b", "a.x.y.b", true],
    ["a.#.b", "a.x.y", false],
    ["#.b", "b", true],
    ["#.b", "x.y.b", true],
    ["#.b", "x.b.y", false],
    ["#.#", "a.b", true],
    ["*.#.*", "a", false],
    ["*.#.*", "a.b", true],
    ["a.*.b", "a..b", true],
    ["a.#", "a..b", true],
    ["a.*", "a.", true],
    ["a", "a.", false],
    ["*.a", ".a", true],
    ["a..b", "a..b", true],
    ["a..b", "a.b", false],
  ];

  it.each(cases)("pattern %j on key %j gives %s", (pattern, key, expected) => {
    // Act
    const result = topicPattern(pattern).test(key);

    // Assess
    expect(result).toBe(expected);
  });

  it("matches keys of hundreds of words at the ends only where the pattern says", () => {
    // Arrange
    const key = Array.from({ length: 300 }, (_, i) => `w${i}`).join(".");

    // Act
    const results = ["#.w299", "w0.#", "w0.#.w299", "#.w150.#", "#.w298", "*.#.*", "w1.#"].map((p) => topicPattern(p).test(key));

    // Assess
    expect(results).toEqual([true, true, true, true, false, true, false]);
  });

  it("agrees with a reference matcher on random patterns and keys over a small alphabet", () => {
    // Arrange: words that collide often, wildcards anywhere, empty words and the empty key included.
    // An empty pattern cannot be in a policy.
    const pattern = fc.array(fc.constantFrom("a", "b", "*", "#", ""), { minLength: 1, maxLength: 6 }).map((w) => w.join(".")).filter((p) => p !== "");
    const key = fc.array(fc.constantFrom("a", "b", ""), { minLength: 0, maxLength: 7 }).map((w) => w.join("."));

    // Act / Assess
    fc.assert(
      fc.property(pattern, key, (p, k) => topicPattern(p).test(k) === referenceTopicMatch(p, k)),
      { numRuns: 5000 },
    );
  });

  it.each([
    ["*", false],
    ["*.#", false],
    ["#.*", false],
    ["#", true],
    ["#.#", true],
  ])("takes the empty routing key as no words, as RabbitMQ does: pattern %j gives %s", (pattern, expected) => {
    // Act
    const result = topicPattern(pattern).test("");

    // Assess
    expect(result).toBe(expected);
  });
});

describe("taskGlob matches task names as fnmatch does", () => {
  const cases: Array<[string, string, boolean]> = [
    ["*", "tasks.add", true],
    ["*", "", true],
    ["tasks.*", "tasks.add", true],
    ["tasks.*", "tasks.media.compress", true],
    ["tasks.*", "other.add", false],
    ["tasks.?dd", "tasks.add", true],
    ["tasks.?dd", "tasks.aadd", false],
    ["tasks.add", "tasksXadd", false],
    ["add", "tasks.add", false],
    ["tasks", "tasks.add", false],
    ["a+b", "a+b", true],
    ["a+b", "aab", false],
    ["(x)|y", "y", false],
    ["[ab]", "a", false],
    ["[ab]", "[ab]", true],
    ["^tasks$", "^tasks$", true],
    ["*", "line\nbreak", true],
  ];

  it.each(cases)("glob %j on name %j gives %s", (glob, name, expected) => {
    // Act
    const result = taskGlob(glob).test(name);

    // Assess
    expect(result).toBe(expected);
  });
});

describe("checkTask under the default policy", () => {
  it("allows a JSON task to the queue celery through the default exchange", () => {
    // Act
    const verdict = checkTask(resolvePolicy({}), request());

    // Assess
    expect(verdict).toEqual({ declare: CELERY_DECLARATION });
  });

  it("refuses another queue through the default exchange", () => {
    // Act
    const reason = reasonOf({}, { routingKey: "video" });

    // Assess
    expect(reason).toBe("queue is not in the policy");
  });

  it("refuses Celery's default exchange with routing key celery", () => {
    // Act
    const reason = reasonOf({}, { exchange: "celery", routingKey: "celery" });

    // Assess
    expect(reason).toBe("exchange and routing key are not in the policy");
  });

  it.each(["application/x-yaml", "application/x-msgpack", "text/plain"])("refuses the content type %s", (contentType) => {
    // Act
    const reason = reasonOf({}, { contentType });

    // Assess
    expect(reason).toBe("content type is not allowed by the policy");
  });

  it("refuses pickle, naming the switch that would allow it", () => {
    // Act
    const reason = reasonOf({}, { contentType: PICKLE_CONTENT_TYPE });

    // Assess
    expect(reason).toMatch(/pickle.*dangerouslyAllowPickle/);
  });
});

describe("checkTask under a widened policy", () => {
  const wide: RelayPolicy = {
    queues: [{ name: "celery" }, { name: "video", declare: { durable: true, arguments: { "x-max-priority": 10 } } }],
    exchanges: [
      { exchange: "media", routingKeys: ["video.*"], declare: { type: "topic", queue: { name: "video", bindingKey: "video.*" } } },
      { exchange: "everything", routingKeys: ["#"] },
    ],
    contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
    dangerouslyAllowPickle: true,
  };

  it.each(["application/x-yaml", "application/x-msgpack", PICKLE_CONTENT_TYPE])("allows %s once the policy lists it", (contentType) => {
    // Act
    const reason = reasonOf(wide, { contentType });

    // Assess
    expect(reason).toBeNull();
  });

  it.each([
    ["celery.pidbox", ""],
    ["celery.pidbox", "#"],
    ["reply.celery.pidbox", "0f1e2d3c"],
    ["celeryev", "worker.heartbeat"],
    ["amq.topic", "anything"],
    ["amq.direct", "celery"],
    ["", "worker1.celery.pidbox"],
    ["", "0f1e2d3c.reply.celery.pidbox"],
    ["", "celeryev.4b1c"],
    ["", "amq.gen-JzTY20BRgKO"],
  ])("refuses the control destination exchange %j, routing key %j, even with # open on another exchange", (exchange, routingKey) => {
    // Act
    const reason = reasonOf(wide, { exchange, routingKey });

    // Assess
    expect(reason).toMatch(/^destination is /);
  });

  it("returns the declaration of the listed queue, as the policy wrote it", () => {
    // Arrange
    const policy = resolvePolicy(wide);

    // Act
    const verdict = checkTask(policy, request({ routingKey: "video" }));

    // Assess
    expect(verdict).toEqual({ declare: { queue: "video", exchange: "video", exchangeType: "direct", routingKey: "video", durable: true, arguments: { "x-max-priority": 10 } } });
    expect("declare" in verdict && verdict.declare).toBe(policy.queues.get("video"));
  });

  it("returns no declaration for a queue listed without declare", () => {
    // Act
    const verdict = checkTask(resolvePolicy(wide), request({ routingKey: "celery" }));

    // Assess
    expect(verdict).toEqual({ declare: null });
  });

  it("returns the exchange rule's declaration for a matching routing key", () => {
    // Act
    const verdict = checkTask(resolvePolicy(wide), request({ exchange: "media", routingKey: "video.compress" }));

    // Assess
    expect(verdict).toEqual({ declare: { exchange: "media", exchangeType: "topic", routingKey: "video.*", durable: true, queue: "video" } });
  });

  it("refuses a routing key the exchange rule does not match", () => {
    // Act
    const reason = reasonOf(wide, { exchange: "media", routingKey: "video.compress.now" });

    // Assess
    expect(reason).toBe("exchange and routing key are not in the policy");
  });

  it("uses the first exchange rule that matches, and only its declaration", () => {
    // Arrange: two rules on one exchange, only the second matches the key.
    const policy = resolvePolicy({
      exchanges: [
        { exchange: "media", routingKeys: ["audio.*"], declare: { type: "topic", queue: { name: "audio", bindingKey: "audio.*" } } },
        { exchange: "media", routingKeys: ["video.*"] },
      ],
    });

    // Act
    const verdict = checkTask(policy, request({ exchange: "media", routingKey: "video.compress" }));

    // Assess
    expect(verdict).toEqual({ declare: null });
  });

  it("refuses a task name outside the policy's globs", () => {
    // Act
    const reason = reasonOf({ ...wide, tasks: ["media.*"] }, { task: "os.system" });

    // Assess
    expect(reason).toBe("task name is not allowed by the policy");
  });
});

describe("checkTask narrows by sender", () => {
  const policy: RelayPolicy = {
    queues: [{ name: "celery" }, { name: "reports" }],
    exchanges: [{ exchange: "media", routingKeys: ["#"] }],
    tasks: ["tasks.*", "reports.*"],
    senders: [{ principal: "AROAEDGE", queues: ["reports"], exchanges: [{ exchange: "media", routingKeys: ["video.*"] }], tasks: ["reports.*"] }],
  };

  it("allows a role session the destination and task its rule names", () => {
    // Act
    const reason = reasonOf(policy, { senderId: "AROAEDGE:worker-fetch-1", routingKey: "reports", task: "reports.daily" });

    // Assess
    expect(reason).toBeNull();
  });

  it("refuses a role session a queue the policy allows but its rule does not", () => {
    // Act
    const reason = reasonOf(policy, { senderId: "AROAEDGE:worker-fetch-1", routingKey: "celery", task: "reports.daily" });

    // Assess
    expect(reason).toBe("destination is not allowed for this sender");
  });

  it("refuses a role session a routing key its exchange rule does not match", () => {
    // Act
    const reason = reasonOf(policy, { senderId: "AROAEDGE:s", exchange: "media", routingKey: "audio.mix", task: "reports.daily" });

    // Assess
    expect(reason).toBe("destination is not allowed for this sender");
  });

  it("refuses a role session a task its rule does not name", () => {
    // Act
    const reason = reasonOf(policy, { senderId: "AROAEDGE:s", routingKey: "reports", task: "tasks.add" });

    // Assess
    expect(reason).toBe("task name is not allowed for this sender");
  });

  it("applies the rule to the role id itself", () => {
    // Act
    const reason = reasonOf(policy, { senderId: "AROAEDGE", routingKey: "celery", task: "reports.daily" });

    // Assess
    expect(reason).toBe("destination is not allowed for this sender");
  });

  it.each([
    ["another role's session", "AROAOTHER:s"],
    ["a role whose id only starts with the principal", "AROAEDGEX:s"],
    ["a record without a sender", undefined],
  ])("leaves %s to the policy's own lists", (_who, senderId) => {
    // Act
    const reason = reasonOf(policy, { senderId, routingKey: "celery", task: "tasks.add" });

    // Assess
    expect(reason).toBeNull();
  });

  it("cannot open a queue the policy does not list", () => {
    // Arrange
    const widening: RelayPolicy = { senders: [{ principal: "AIDAWIDE", queues: ["celery", "secret"] }] };

    // Act
    const reason = reasonOf(widening, { senderId: "AIDAWIDE", routingKey: "secret" });

    // Assess
    expect(reason).toBe("queue is not in the policy");
  });

  it("cannot open an exchange the policy does not list", () => {
    // Arrange
    const widening: RelayPolicy = { senders: [{ principal: "AIDAWIDE", exchanges: [{ exchange: "media", routingKeys: ["#"] }] }] };

    // Act
    const reason = reasonOf(widening, { senderId: "AIDAWIDE", exchange: "media", routingKey: "video.x" });

    // Assess
    expect(reason).toBe("exchange and routing key are not in the policy");
  });

  it("cannot allow a task the policy's globs refuse", () => {
    // Arrange
    const widening: RelayPolicy = { tasks: ["tasks.*"], senders: [{ principal: "AIDAWIDE", tasks: ["*"] }] };

    // Act
    const reason = reasonOf(widening, { senderId: "AIDAWIDE", task: "os.system" });

    // Assess
    expect(reason).toBe("task name is not allowed by the policy");
  });

  it("applies every rule that names the sender, role-wide and per session", () => {
    // Arrange: the role may send to celery and reports; this one session only to reports.
    const layered: RelayPolicy = {
      queues: [{ name: "celery" }, { name: "reports" }],
      senders: [
        { principal: "AROAEDGE", queues: ["celery", "reports"] },
        { principal: "AROAEDGE:cron", queues: ["reports"] },
      ],
    };

    // Act
    const reasons = [reasonOf(layered, { senderId: "AROAEDGE:cron", routingKey: "celery" }), reasonOf(layered, { senderId: "AROAEDGE:web", routingKey: "celery" })];

    // Assess
    expect(reasons).toEqual(["destination is not allowed for this sender", null]);
  });
});

describe("mayRevoke", () => {
  it("lets any sender revoke under the default policy", () => {
    // Act
    const may = mayRevoke(resolvePolicy({}), "AIDAPLAIN");

    // Assess
    expect(may).toBe(true);
  });

  it("lets nobody revoke when the policy turns revokes off", () => {
    // Act
    const may = mayRevoke(resolvePolicy({ revokes: false }), "AIDAPLAIN");

    // Assess
    expect(may).toBe(false);
  });

  it("refuses the sessions of a role whose rule turns revokes off", () => {
    // Arrange
    const policy = resolvePolicy({ senders: [{ principal: "AROAEDGE", revokes: false }] });

    // Act
    const may = [mayRevoke(policy, "AROAEDGE:s1"), mayRevoke(policy, "AROAOTHER:s1")];

    // Assess
    expect(may).toEqual([false, true]);
  });

  it("cannot be widened by a sender rule when the policy turns revokes off", () => {
    // Arrange
    const policy = resolvePolicy({ revokes: false, senders: [{ principal: "AROAEDGE", revokes: true }] });

    // Act
    const may = mayRevoke(policy, "AROAEDGE:s1");

    // Assess
    expect(may).toBe(false);
  });
});

describe("isAdmin", () => {
  it("names no admin by default", () => {
    // Act
    const admin = isAdmin(resolvePolicy({}), "AROAADMIN:ops");

    // Assess
    expect(admin).toBe(false);
  });

  it.each([
    ["the admin role's session", "AROAADMIN:ops", true],
    ["the admin role itself", "AROAADMIN", true],
    ["a role whose id only starts with the admin's", "AROAADMINX:ops", false],
    ["a record without a sender", undefined, false],
  ])("tells whether %s is an admin", (_who, senderId, expected) => {
    // Arrange
    const policy = resolvePolicy({ admins: ["AROAADMIN"] });

    // Act
    const admin = isAdmin(policy, senderId);

    // Assess
    expect(admin).toBe(expected);
  });
});

describe("isPrincipal", () => {
  it.each([
    ["AIDAUSER", "AIDAUSER", true],
    ["AIDAUSERX", "AIDAUSER", false],
    ["AROAROLE:session-1", "AROAROLE", true],
    ["AROAROLE:session-1", "AROAROLE:session-1", true],
    ["AROAROLE:session-1", "AROAROLE:session-2", false],
    ["AROAROLEX:session-1", "AROAROLE", false],
    ["AROAROLE", "AROAROLE:session-1", false],
  ])("sender %j is principal %j: %s", (senderId, principal, expected) => {
    // Act
    const result = isPrincipal(senderId, principal);

    // Assess
    expect(result).toBe(expected);
  });

  it("is false for a record without a sender", () => {
    // Act
    const result = isPrincipal(undefined, "AIDAUSER");

    // Assess
    expect(result).toBe(false);
  });
});

describe("policyFromEnv", () => {
  it.each([undefined, ""])("gives the default policy for RELAY_POLICY=%j", (raw) => {
    // Act
    const policy = policyFromEnv(raw);

    // Assess
    expect(policy.source).toEqual(DEFAULT_RELAY_POLICY);
  });

  it("parses a policy written as JSON", () => {
    // Arrange
    const raw = JSON.stringify({ queues: [{ name: "video" }], revokes: false });

    // Act
    const policy = policyFromEnv(raw);

    // Assess
    expect([[...policy.queues.keys()], policy.revokes]).toEqual([["video"], false]);
  });

  it("refuses text that is not JSON, naming the variable", () => {
    // Act
    const err = thrown(() => policyFromEnv("{queues: [celery]}"));

    // Assess
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("RELAY_POLICY");
  });

  it("refuses JSON that is not a valid policy, naming the path", () => {
    // Act
    const err = thrown(() => policyFromEnv('{"queues": [{"name": "celery.pidbox"}]}'));

    // Assess
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toContain("queues[0].name");
  });

  it("refuses JSON null as not an object", () => {
    // Act
    const err = thrown(() => policyFromEnv("null"));

    // Assess
    expect(err.message).toContain("(top level) must be an object");
  });
});

describe("the relay's record helpers", () => {
  const retry = { baseSeconds: 30, maxSeconds: 900 };

  it.each([
    [1, 30],
    [2, 60],
    [3, 120],
    [5, 480],
    [6, 900],
    [1000, 900],
  ])("backs off a broker failure on receive %i for %i seconds", (receiveCount, seconds) => {
    // Act
    const result = backoffSeconds(receiveCount, retry);

    // Assess
    expect(result).toBe(seconds);
  });

  it("backs off a receive count below one as the first receive", () => {
    // Act
    const result = backoffSeconds(0, retry);

    // Assess
    expect(result).toBe(30);
  });

  it.each([
    ["an EnvelopeError", new EnvelopeError("invalid envelope: x"), true],
    ["a PolicyError", new PolicyError("refused"), true],
    ["a PayloadTooLargeError", new PayloadTooLargeError("body", 2, 1), true],
    ["a SerializationError", new SerializationError("bad", "args[0]"), true],
    ["a PublishError (channel closed)", new PublishError("ERR_CHANNEL_CLOSED", "closed"), false],
    ["a ConnectionError", new ConnectionError("refused"), false],
    ["a TimeoutError", new TimeoutError("slow"), false],
    ["a ConfigurationError", new ConfigurationError("bad"), false],
    ["a plain Error", new Error("boom"), false],
  ])("calls %s poison: %s", (_what, err, expected) => {
    // Act
    const poison = isPoison(err);

    // Assess
    expect(poison).toBe(expected);
  });

  it("judges a record by its own SenderId when it does not come from a forwarder", () => {
    // Arrange
    const record = sqsRecord("{}", "m1");

    // Act
    const result = senderOf(record, "AROAADMIN:forged", ["AROASCHEDULER"]);

    // Assess
    expect(result).toEqual({ sender: "AIDATEST", forwarded: false });
  });

  it("judges a forwarded record by the sender its envelope names", () => {
    // Arrange
    const record = sqsRecord("{}", "m1");
    record.attributes.SenderId = "AROASCHEDULER:scheduler-fn";

    // Act
    const result = senderOf(record, "AROAEDGE:s1", ["AROASCHEDULER"]);

    // Assess
    expect(result).toEqual({ sender: "AROAEDGE:s1", forwarded: true });
  });

  it("refuses a forwarded record that names no sender", () => {
    // Arrange
    const record = sqsRecord("{}", "m1");
    record.attributes.SenderId = "AROASCHEDULER:scheduler-fn";

    // Act
    const err = thrown(() => senderOf(record, undefined, ["AROASCHEDULER"]));

    // Assess
    expect(err).toBeInstanceOf(EnvelopeError);
    expect((err as EnvelopeError).code).toBe("ERR_ENVELOPE");
  });

  it("does not take a role whose id only starts with a forwarder's as the forwarder", () => {
    // Arrange
    const record = sqsRecord("{}", "m1");
    record.attributes.SenderId = "AROASCHEDULERX:s";

    // Act
    const result = senderOf(record, "AROAADMIN", ["AROASCHEDULER"]);

    // Assess
    expect(result).toEqual({ sender: "AROASCHEDULERX:s", forwarded: false });
  });
});
