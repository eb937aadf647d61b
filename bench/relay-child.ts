/**
 * @module
 * 4. Relay throughput, in its own process because the handler reads its environment at import and
 * logs a JSON line per record (stdout is discarded by the parent). N envelopes, written by the SDK
 * exactly as `sqsRelay` would, go through the real handler (`functions/relay/handler.ts`: Powertools
 * batch, envelope validation, allowlist, AmqpTransport with confirms) in SQS events of 10 records,
 * one event at a time as one Lambda container receives them. Against it: raw amqplib publishing
 * the same messages (bytes, properties, `mandatory` as the relay forces it) 10 at a time, waiting
 * for each batch's confirms.
 *
 *   node --import tsx bench/relay-child.ts N REPS RESULT_FILE
 */
import { writeFileSync } from "node:fs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { Celery } from "../sdk/node.js";
import { encodeEnvelope } from "../sdk/wire/envelope.js";
import { BENCH_QUEUE, BROKER_URL, BenchQueue, median, round } from "./lib/common.js";
import { lambdaContext, sqsEvents } from "./lib/sqs-event.js";
import { buildMessages, openRawConfirmChannel, toRaw } from "./throughput.js";

const n = Number(process.argv[2] ?? 20_000);
const reps = Number(process.argv[3] ?? 3);
const resultFile = process.argv[4]!;

const queue = await BenchQueue.open();
const producer = new Celery({ broker: BROKER_URL }); // only builds messages; never connects
const messages = await buildMessages(producer, n);
const warmMessages = await buildMessages(producer, 500, n);
const events = sqsEvents(messages.map(encodeEnvelope));
const warmEvents = sqsEvents(warmMessages.map(encodeEnvelope));
const rawMessages = messages.map((m) => {
  const r = toRaw(m);
  return { ...r, options: { ...r.options, mandatory: true } };
});

const { handler } = (await import("../functions/relay/handler.js")) as { handler: (e: SQSEvent, c: Context) => Promise<SQSBatchResponse> };
const context = lambdaContext();
const raw = await openRawConfirmChannel();

const relayAll = async (list: readonly SQSEvent[]): Promise<void> => {
  for (const event of list) {
    const response = await handler(event, context);
    if (response.batchItemFailures.length > 0) throw new Error(`relay failed ${response.batchItemFailures.length} records`);
  }
};
const rawAll = async (list: typeof rawMessages): Promise<void> => {
  for (let i = 0; i < list.length; i += 10) {
    for (const r of list.slice(i, i + 10)) raw.channel.publish(r.exchange, r.routingKey, r.content, r.options);
    await raw.channel.waitForConfirms();
  }
};

// Connect, declare and warm the JIT off the clock.
await relayAll(warmEvents);
await rawAll(rawMessages.slice(0, 500));

const seconds = { relay: [] as number[], raw: [] as number[] };
const cpu = { relay: [] as number[], raw: [] as number[] };
for (let rep = 0; rep < reps; rep++) {
  for (const kind of ["raw", "relay"] as const) {
    await queue.purge();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    if (kind === "relay") await relayAll(events);
    else await rawAll(rawMessages);
    seconds[kind].push((performance.now() - t0) / 1000);
    const used = process.cpuUsage(c0);
    cpu[kind].push((used.user + used.system) / n);
    const depth = await queue.depth();
    if (depth !== n) throw new Error(`${kind}: ${BENCH_QUEUE} holds ${depth}, expected ${n}`);
    process.stderr.write(`[bench] relay ${kind} rep ${rep + 1}/${reps}: ${round(n / seconds[kind].at(-1)!, 0)}/s\n`);
  }
}
await queue.purge();
await raw.close();
await queue.close();

const envelopeBytes = Buffer.byteLength(events[0]!.Records[0]!.body);
writeFileSync(
  resultFile,
  JSON.stringify({
    n,
    batchSize: 10,
    envelopeBytes,
    relay: { runs: seconds.relay.map((s) => round(s, 4)), perSecond: round(n / median(seconds.relay), 0), cpuMicrosPerTask: round(median(cpu.relay), 1) },
    raw: { runs: seconds.raw.map((s) => round(s, 4)), perSecond: round(n / median(seconds.raw), 0), cpuMicrosPerTask: round(median(cpu.raw), 1) },
  }),
);
// The handler keeps its connection open at module scope, as in Lambda; end the process here.
process.exit(0);
