// Cold-start driver: plays the Lambda runtime in a fresh `node` process (no tsx, no loader hooks).
//   node bench/cold/driver.mjs BUNDLE.mjs EVENT.json
// Prints one line, COLD_START_RESULT {json}. The broker connection is timed apart from the rest of the first invocation:
// from the socket's creation (net.client.socket) to RabbitMQ's confirm.select-ok on it, i.e. TCP +
// AMQP handshake + channel open + confirm mode. Everything before the handler runs is "import".
const bootMs = performance.now(); // ms since this process started: Node's own start-up
import { subscribe } from "node:diagnostics_channel";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { randomUUID } from "node:crypto";

const [bundle, eventFile] = process.argv.slice(2);
let connectStart;
let connectEnd;
// A method frame on any channel: type 1, channel, size 4, class 85 (confirm), method 11 (select-ok), frame-end.
const isSelectOk = (b, i) => b[i] === 1 && b[i + 3] === 0 && b[i + 4] === 0 && b[i + 5] === 0 && b[i + 6] === 4 && b[i + 7] === 0 && b[i + 8] === 85 && b[i + 9] === 0 && b[i + 10] === 11 && b[i + 11] === 0xce;
subscribe("net.client.socket", ({ socket }) => {
  if (connectStart !== undefined) return;
  connectStart = performance.now();
  socket.on("data", (chunk) => {
    if (connectEnd !== undefined) return;
    for (let i = 0; i + 11 < chunk.length; i++) if (isSelectOk(chunk, i)) { connectEnd = performance.now(); return; }
  });
});
const event = JSON.parse(readFileSync(eventFile, "utf8"));
const context = { functionName: "cold", awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 30000, callbackWaitsForEmptyEventLoop: true };

const t0 = performance.now();
const mod = await import(pathToFileURL(bundle).href);
const t1 = performance.now();
const response = await mod.handler(event, context);
const t2 = performance.now();
if (connectEnd === undefined) throw new Error("did not see the broker connection open");
const failures = response?.batchItemFailures?.length ?? 0;
if (failures) throw new Error(`first batch failed ${failures} records`);
const connectMs = connectEnd - connectStart;
process.stdout.write(
  "\nCOLD_START_RESULT " +
    JSON.stringify({ bootMs, importMs: t1 - t0, firstInvokeMs: t2 - t1, connectMs, firstInvokeExclConnectMs: t2 - t1 - connectMs, sinceProcessStartMs: t2 }) +
    "\n",
);
process.exit(0);
