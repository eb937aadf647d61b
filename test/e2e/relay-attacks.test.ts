/**
 * The intake queue is reachable with keys edge platforms hold. Each attack a sender could try is
 * sent as a raw SQS message to the relay bundled as deployed (esbuild ESM), in front of a real
 * RabbitMQ and a real Celery worker, under the default policy and under a widened one. Every attack
 * is refused with its reason, dead-lettered, and the worker is still up and executes nothing it
 * should not: a sentinel task sent after the attacks runs, and nothing else did.
 */
import { randomUUID } from "node:crypto";
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayPolicy } from "../../functions/shared/policy.js";
import { toEnvelope, type Envelope } from "../../sdk/wire/envelope.js";
import { Celery } from "../../sdk/node.js";
import { revokeMessage } from "../../sdk/revoke.js";
import { credentialsFor, sqsClientConfig } from "../../scripts/local/fauxqs.js";
import { startCeleryWorker, type CeleryWorker } from "../helpers/celery-worker.js";
import { ExecutionLog } from "../helpers/executions.js";
import { deleteQueues, purgeQueues, withChannel } from "../helpers/rabbit.js";
import { startRelayHarness, type RelayHarness } from "../helpers/relay-harness.js";

const BROKER = "amqp://guest:guest@127.0.0.1:5672//";
const QUEUE = "celery";
const EDGE_KEY = "AKIDEDGESENDER";
const EDGE_SENDER = "AIDAEDGESENDER";
const log = new ExecutionLog();
const builder = new Celery({ broker: BROKER }); // builds messages only; never connects
let worker: CeleryWorker;

const WIDENED: RelayPolicy = {
  queues: [{ name: QUEUE, declare: true }, { name: "ce.video" }],
  exchanges: [{ exchange: "celery_edge.topic", routingKeys: ["#"] }],
  tasks: ["tasks.*"],
  contentTypes: ["application/json", "application/x-yaml", "application/x-msgpack"],
  dangerouslyAllowPickle: true,
  admins: ["AROAADMIN"],
  senders: [{ principal: EDGE_SENDER, queues: [QUEUE], tasks: ["tasks.add"], revokes: false }],
};

beforeAll(async () => {
  await purgeQueues([QUEUE, "ce.video"]);
  worker = await startCeleryWorker({ queues: [QUEUE, "ce.video"], env: { CELERY_EDGE_DEFAULT_QUEUE: QUEUE } });
});

afterAll(async () => {
  await builder.close();
  await worker?.stop();
});

type Mutable = Envelope & Record<string, unknown>;

async function taskEnvelope(task: string, args: unknown[], options: Record<string, unknown> = {}): Promise<Mutable> {
  const message = await builder.buildMessage(task, { args, queue: QUEUE, ...options });
  return JSON.parse(JSON.stringify(toEnvelope(message))) as Mutable;
}

/** A control message addressed as kombu's Mailbox addresses a broadcast, with any method. */
function controlEnvelope(method: string, args: Record<string, unknown>, taskId = randomUUID()): Mutable {
  const e = JSON.parse(JSON.stringify(toEnvelope(revokeMessage(taskId)))) as Mutable;
  e.body = JSON.stringify({ method, arguments: args, destination: null, pattern: null, matcher: null });
  return e;
}

interface Attack {
  name: string;
  envelope: () => Promise<Mutable> | Mutable;
  /** The refusal reason logged for it. */
  says: RegExp;
  /** Under the widened policy this one is allowed (and is then expected to run). */
  widenedAllows?: boolean;
}

const ATTACKS: Attack[] = [
  { name: "a shutdown broadcast on celery.pidbox", envelope: () => controlEnvelope("shutdown", {}), says: /method "shutdown" is not allowed/ },
  {
    name: "a shutdown sent to the worker's own mailbox through the default exchange",
    envelope: () => {
      const e = controlEnvelope("shutdown", {});
      Object.assign(e, { exchange: "", routingKey: `${worker.hostname}.celery.pidbox`, task: { id: randomUUID(), name: "tasks.add", eta: null } });
      return e;
    },
    says: /destination is a Celery control, event or broker-owned queue/,
  },
  { name: "a revoke with terminate and SIGKILL", envelope: () => controlEnvelope("revoke", { task_id: randomUUID(), terminate: true, signal: "SIGKILL" }), says: /terminate is not allowed/ },
  { name: "pool_restart", envelope: () => controlEnvelope("pool_restart", { reload: true }), says: /method "pool_restart" is not allowed/ },
  { name: "add_consumer", envelope: () => controlEnvelope("add_consumer", { queue: "ce.attacker" }), says: /method "add_consumer" is not allowed/ },
  { name: "rate_limit", envelope: () => controlEnvelope("rate_limit", { task_name: "tasks.add", rate_limit: "1/h" }), says: /method "rate_limit" is not allowed/ },
  {
    name: "a revoke that asks for a reply",
    envelope: () => {
      const e = controlEnvelope("revoke", {});
      const id = randomUUID();
      e.body = JSON.stringify({ method: "revoke", arguments: { task_id: id }, destination: null, pattern: null, matcher: null, reply_to: { exchange: "reply.celery.pidbox", routing_key: "x" } });
      e.task.id = id;
      return e;
    },
    says: /body field "reply_to" is not allowed/,
  },
  {
    name: "a task published to the event exchange celeryev",
    envelope: async () => Object.assign(await taskEnvelope("tasks.add", [1, 2]), { exchange: "celeryev", routingKey: "task.sent" }),
    says: /destination is Celery's event exchange/,
  },
  {
    name: "a task published to amq.direct",
    envelope: async () => Object.assign(await taskEnvelope("tasks.add", [1, 2]), { exchange: "amq.direct", routingKey: QUEUE }),
    says: /destination is a RabbitMQ built-in exchange/,
  },
  {
    name: "a task for a queue outside the policy",
    envelope: async () => Object.assign(await taskEnvelope("tasks.add", [1, 2]), { routingKey: "ce.not-listed" }),
    says: /queue is not in the policy/,
  },
  {
    name: "a pickle body",
    envelope: () => taskEnvelope("tasks.echo", ["pickled"], { serializer: "pickle" }),
    says: /pickle bodies are not allowed/,
    widenedAllows: true,
  },
  {
    name: "a far eta in the headers with task.eta null in the summary",
    envelope: async () => {
      const e = await taskEnvelope("tasks.echo", ["late"], { eta: new Date(Date.now() + 86_400_000) });
      e.task.eta = null;
      return e;
    },
    says: /task\.eta null disagrees with the message's/,
  },
  {
    name: "a summary naming another task than the headers",
    envelope: async () => {
      const e = await taskEnvelope("tasks.fail", ["boom"]);
      e.task.name = "tasks.add";
      return e;
    },
    says: /task\.name "tasks\.add" disagrees with the message's "tasks\.fail"/,
  },
  {
    name: "an invalid expiration",
    envelope: async () => {
      const e = await taskEnvelope("tasks.echo", ["x"]);
      e.properties.expiration = "soon";
      return e;
    },
    says: /properties\.expiration "soon" must be a decimal number of milliseconds/,
  },
  {
    name: "a 1 MiB task name in the summary (logged cut)",
    envelope: async () => {
      const e = await taskEnvelope("tasks.echo", ["x"]);
      e.task.name = "n".repeat(1_000_000);
      return e;
    },
    says: /task\.name "nnnn.*… \(1000000 chars\) disagrees/,
  },
];

describe.each([
  ["the default policy", undefined],
  ["a widened policy", WIDENED],
] as const)("under %s", (_title, policy) => {
  let harness: RelayHarness;
  let edge: SQSClient;

  beforeAll(async () => {
    harness = await startRelayHarness({ brokerUrl: BROKER, bundled: true, maxReceiveCount: 2, visibilityTimeout: 1, senderIds: { [EDGE_KEY]: EDGE_SENDER }, ...(policy ? { policy } : { policy: {} }) });
    edge = new SQSClient(sqsClientConfig(harness.sqs.endpoint, credentialsFor(EDGE_KEY)));
  });

  afterAll(async () => {
    edge?.destroy();
    await harness?.stop();
  });

  async function send(client: SQSClient, bodies: string[]): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < bodies.length; i += 10) {
      const out = await client.send(
        new SendMessageBatchCommand({ QueueUrl: harness.intake.url, Entries: bodies.slice(i, i + 10).map((MessageBody, j) => ({ Id: String(j), MessageBody })) }),
      );
      expect(out.Failed ?? []).toEqual([]);
      ids.push(...(out.Successful ?? []).map((s) => s.MessageId!));
    }
    return ids;
  }

  /** The relay's log lines about one SQS message, parsed. */
  function logged(messageId: string): Array<Record<string, unknown>> {
    return harness.logs
      .flatMap((chunk) => chunk.split("\n").filter(Boolean))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.messageId === messageId);
  }

  async function dlqDepth(): Promise<number> {
    const out = await harness.client.send(new GetQueueAttributesCommand({ QueueUrl: harness.intake.dlqUrl!, AttributeNames: ["ApproximateNumberOfMessages"] }));
    return Number(out.Attributes?.ApproximateNumberOfMessages ?? 0);
  }

  async function waitForDlq(depth: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await dlqDepth()) < depth && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await dlqDepth()).toBe(depth);
  }

  it("refuses every attack with its reason, dead-letters it, and the worker runs only the sentinel", async () => {
    // Prepare
    await log.clear();
    const attacks = ATTACKS.filter((a) => !(policy && a.widenedAllows));
    const envelopes = await Promise.all(attacks.map((a) => a.envelope()));
    const before = await dlqDepth();

    // Act: the attacks, then a sentinel through the same door.
    const messageIds = await send(harness.client, envelopes.map((e) => JSON.stringify(e)));
    const sentinel = await taskEnvelope("tasks.echo", ["sentinel"]);
    await send(harness.client, [JSON.stringify(sentinel)]);

    // Assess
    await log.waitForTask(sentinel.task.id, 30_000);
    await waitForDlq(before + attacks.length);
    expect(worker.isRunning()).toBe(true);
    const ran = (await log.read()).map((r) => r.id);
    expect(ran).toEqual([sentinel.task.id]);
    for (const [i, attack] of attacks.entries()) {
      const lines = logged(messageIds[i]!);
      expect(lines.length, attack.name).toBeGreaterThan(0);
      for (const line of lines) {
        expect(line.message, attack.name).toBe("rejected envelope");
        expect(line.reason, attack.name).toMatch(attack.says);
      }
    }
    expect(Math.max(...harness.logs.map((l) => l.length))).toBeLessThan(2_048);
  });

  it("never carries out an envelope's declare: no queue, exchange or binding a sender names", async () => {
    // Prepare: an allowed task whose envelope asks for a durable copy queue bound to celery/celery,
    // and others asking for fresh uniquely named queues.
    await log.clear();
    const copy = "ce.attack.copy";
    const unique = Array.from({ length: 3 }, () => `ce.attack.${randomUUID()}`);
    await deleteQueues([copy, ...unique]);
    const envelopes = await Promise.all(
      [copy, ...unique].map(async (queue) => {
        const e = await taskEnvelope("tasks.add", [1, 1]);
        e.declare = { queue, exchange: queue === copy ? "celery" : queue, exchangeType: "direct", routingKey: QUEUE, durable: true };
        return e;
      }),
    );

    // Act
    await send(harness.client, envelopes.map((e) => JSON.stringify(e)));

    // Assess: the tasks themselves are allowed and run; the topology they asked for does not exist.
    await log.waitFor(envelopes.length, 30_000);
    for (const queue of [copy, ...unique]) {
      const exists = await withChannel(async (ch) => {
        ch.on("error", () => {});
        return ch.checkQueue(queue).then(
          () => true,
          () => false,
        );
      }).catch(() => false);
      expect(exists, queue).toBe(false);
    }
  });

  it("runs an honest task sent after the attacks exactly once", async () => {
    await log.clear();
    const r = await taskEnvelope("tasks.add", [20, 22]);
    await send(harness.client, [JSON.stringify(r)]);
    const rec = await log.waitForTask(r.task.id, 20_000);
    expect(rec.args).toEqual([20, 22]);
    expect((await log.read()).filter((x) => x.id === r.task.id)).toHaveLength(1);
  });

  if (policy) {
    it("lets through what the widening names: a pickle task runs", async () => {
      await log.clear();
      const e = await taskEnvelope("tasks.echo", ["pickled"], { serializer: "pickle" });
      await send(harness.client, [JSON.stringify(e)]);
      const rec = await log.waitForTask(e.task.id, 20_000);
      expect(rec.args).toEqual(["pickled"]);
    });

    it("narrows a named sender to its own rules: its tasks.add runs, its tasks.echo and its revokes are refused", async () => {
      await log.clear();
      const before = await dlqDepth();
      const add = await taskEnvelope("tasks.add", [2, 3]);
      const echo = await taskEnvelope("tasks.echo", ["not for this sender"]);
      const revoke = JSON.parse(JSON.stringify(toEnvelope(revokeMessage(randomUUID())))) as Mutable;
      const [, echoId, revokeId] = await send(edge, [JSON.stringify(add), JSON.stringify(echo), JSON.stringify(revoke)]);
      await log.waitForTask(add.task.id, 20_000);
      await waitForDlq(before + 2);
      expect((await log.read()).map((r) => r.id)).toEqual([add.task.id]);
      expect(logged(echoId!).map((l) => l.reason)).toContainEqual(expect.stringMatching(/task name is not allowed for this sender/));
      expect(logged(revokeId!).map((l) => l.reason)).toContainEqual(expect.stringMatching(/revokes are not allowed for this sender/));
      expect(logged(echoId!)[0]?.sender).toBe(EDGE_SENDER);
    });
  }

  it("dead-letters the attacks with their bodies untouched, for inspection", async () => {
    const out = await harness.client.send(new ReceiveMessageCommand({ QueueUrl: harness.intake.dlqUrl!, MaxNumberOfMessages: 10 }));
    const bodies = (out.Messages ?? []).map((m) => JSON.parse(m.Body!) as Mutable);
    expect(bodies.length).toBeGreaterThan(0);
    expect(bodies.every((b) => b.celeryEdgeEnvelope === 1)).toBe(true);
  });
});
