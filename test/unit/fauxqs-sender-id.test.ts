/**
 * The local SQS emulator's `senderIds` option against real fauxqs and the real `@aws-sdk/client-sqs`:
 * received messages report the SenderId mapped to the access key their sender signed with, as real
 * SQS reports the sending principal, and that carries through the local event source into records.
 */
import {
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
  type Message,
  type MessageSystemAttributeName,
} from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createQueue,
  credentialsFor,
  sqsClientConfig,
  startSqsEmulator,
  type SqsEmulator,
} from "../../scripts/local/fauxqs.js";
import { startSqsEventSource } from "../../scripts/local/sqs-event-source.js";

const ALICE = { accessKeyId: "AKIAALICE", senderId: "AIDAALICEEXAMPLE" };
const ROLE = { accessKeyId: "ASIAROLE", senderId: "AROAROLEEXAMPLE:scheduler-session" };
const FAUXQS_SENDER_ID = "000000000000";

let emulator: SqsEmulator;
let alice: SQSClient;
let role: SQSClient;
let stranger: SQSClient;
let queueSeq = 0;

beforeAll(async () => {
  emulator = await startSqsEmulator({
    senderIds: { [ALICE.accessKeyId]: ALICE.senderId, [ROLE.accessKeyId]: ROLE.senderId },
  });
  alice = new SQSClient(sqsClientConfig(emulator.endpoint, credentialsFor(ALICE.accessKeyId)));
  role = new SQSClient(sqsClientConfig(emulator.endpoint, credentialsFor(ROLE.accessKeyId)));
  stranger = new SQSClient(sqsClientConfig(emulator.endpoint));
});

afterAll(async () => {
  for (const client of [alice, role, stranger]) client.destroy();
  await emulator.stop();
});

async function freshQueue(options: Parameters<typeof createQueue>[2] = {}) {
  return createQueue(stranger, `sender-id-${++queueSeq}`, options);
}

async function send(client: SQSClient, queueUrl: string, body: string): Promise<string> {
  const out = await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
  if (!out.MessageId) throw new Error("SendMessage returned no MessageId");
  return out.MessageId;
}

/** Receives until `count` messages have arrived (fauxqs returns at most 10 per call). */
async function receiveAll(
  queueUrl: string,
  count: number,
  names: MessageSystemAttributeName[] | undefined,
): Promise<Message[]> {
  const received: Message[] = [];
  while (received.length < count) {
    const out = await stranger.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        ...(names ? { MessageSystemAttributeNames: names } : {}),
      }),
    );
    if (!out.Messages?.length) throw new Error(`only ${received.length} of ${count} messages arrived`);
    received.push(...out.Messages);
  }
  return received;
}

/** Body → reported SenderId (undefined when the response carries none). */
function senderIdsByBody(messages: readonly Message[]): Record<string, string | undefined> {
  return Object.fromEntries(messages.map((m) => [m.Body ?? "", m.Attributes?.SenderId]));
}

describe("startSqsEmulator senderIds", () => {
  it.each<[string, MessageSystemAttributeName[]]>([
    ["All", ["All"]],
    ["SenderId", ["SenderId"]],
  ])("reports each SendMessage sender's mapped SenderId when %s is requested", async (_, names) => {
    // Prepare
    const queue = await freshQueue();
    await send(alice, queue.url, "from-alice");
    await send(role, queue.url, "from-role");
    await send(stranger, queue.url, "from-stranger");

    // Act
    const received = await receiveAll(queue.url, 3, names);

    // Assess
    expect(senderIdsByBody(received)).toEqual({
      "from-alice": ALICE.senderId,
      "from-role": ROLE.senderId,
      "from-stranger": FAUXQS_SENDER_ID,
    });
  });

  it("reports the mapped SenderId for every entry of a SendMessageBatch", async () => {
    // Prepare
    const queue = await freshQueue();
    const batch = (prefix: string) => ({
      QueueUrl: queue.url,
      Entries: [0, 1, 2].map((i) => ({ Id: `m${i}`, MessageBody: `${prefix}-${i}` })),
    });
    const sentByAlice = await alice.send(new SendMessageBatchCommand(batch("alice")));
    const sentByRole = await role.send(new SendMessageBatchCommand(batch("role")));
    const sentByStranger = await stranger.send(new SendMessageBatchCommand(batch("stranger")));
    expect([sentByAlice, sentByRole, sentByStranger].map((out) => out.Successful?.length)).toEqual([3, 3, 3]);

    // Act
    const received = await receiveAll(queue.url, 9, ["All"]);

    // Assess
    expect(senderIdsByBody(received)).toEqual({
      "alice-0": ALICE.senderId,
      "alice-1": ALICE.senderId,
      "alice-2": ALICE.senderId,
      "role-0": ROLE.senderId,
      "role-1": ROLE.senderId,
      "role-2": ROLE.senderId,
      "stranger-0": FAUXQS_SENDER_ID,
      "stranger-1": FAUXQS_SENDER_ID,
      "stranger-2": FAUXQS_SENDER_ID,
    });
  });

  it("adds no SenderId when the receiver did not ask for it", async () => {
    // Prepare
    const queue = await freshQueue();
    await send(alice, queue.url, "from-alice");

    // Act
    const [message] = await receiveAll(queue.url, 1, ["SentTimestamp"]);

    // Assess
    expect(message?.Body).toBe("from-alice");
    expect(message?.Attributes).toEqual({ SentTimestamp: expect.any(String) });
  });

  it("keeps the sender's SenderId when the queue's redrive policy moves the message to the DLQ", async () => {
    // Prepare: one receive uses up maxReceiveCount; the next receive moves it to the DLQ.
    const queue = await freshQueue({ visibilityTimeout: 0, dlq: { maxReceiveCount: 1 } });
    const messageId = await send(role, queue.url, "poison");
    await receiveAll(queue.url, 1, undefined);
    const drained = await stranger.send(new ReceiveMessageCommand({ QueueUrl: queue.url, WaitTimeSeconds: 0 }));
    expect(drained.Messages ?? []).toEqual([]);

    // Act
    const [message] = await receiveAll(queue.dlqUrl ?? "", 1, ["All"]);

    // Assess
    expect(message?.MessageId).toBe(messageId);
    expect(message?.Attributes?.SenderId).toBe(ROLE.senderId);
  });

  it("rejects an empty SenderId", async () => {
    // Act / Assess
    await expect(startSqsEmulator({ senderIds: { AKIAEMPTY: "" } })).rejects.toThrow(/senderIds\["AKIAEMPTY"\]/);
  });
});

describe("startSqsEventSource with senderIds", () => {
  it("hands records whose attributes.SenderId names each sender", async () => {
    // Prepare
    const queue = await freshQueue();
    const records: SQSRecord[] = [];
    const errors: unknown[] = [];
    const runner = startSqsEventSource({
      client: stranger,
      queueUrl: queue.url,
      queueArn: queue.arn,
      waitTimeSeconds: 1,
      handler: async (event) => {
        records.push(...event.Records);
      },
      onError: (error) => errors.push(error),
    });

    // Act
    try {
      await send(alice, queue.url, "from-alice");
      await send(role, queue.url, "from-role");
      await send(stranger, queue.url, "from-stranger");
      const deadline = Date.now() + 10_000;
      while (records.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    } finally {
      await runner.stop();
    }

    // Assess
    expect(errors).toEqual([]);
    expect(Object.fromEntries(records.map((r) => [r.body, r.attributes.SenderId]))).toEqual({
      "from-alice": ALICE.senderId,
      "from-role": ROLE.senderId,
      "from-stranger": FAUXQS_SENDER_ID,
    });
  });
});
