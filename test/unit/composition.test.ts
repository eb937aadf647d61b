/**
 * Explicit composition: what a URL, a serializer name or a wait resolves to comes from the app
 * (its options, or what the Node entry's `Celery` passes in), never from a map some import filled.
 * Importing the Node entry changes nothing for the universal `Celery`, and two apps share nothing.
 */
import { describe, expect, it } from "vitest";
import { Celery as UniversalCelery } from "../../sdk/app.js";
import type { ResultBackend, ResultMeta } from "../../sdk/backends/backend.js";
import { ConfigurationError, UnsupportedRuntimeError } from "../../sdk/errors.js";
import { AmqpTransport, Celery, resultWaiting } from "../../sdk/node.js";
import { revokeMessage } from "../../sdk/revoke.js";
import { msgpackSerializer } from "../../sdk/serializers/msgpack.js";
import { RecordingTransport } from "../helpers/recording-transport.js";

const AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//";

/** A result backend object, as an edge app would pass one (fetch-based): it knows one result. */
class OneResultBackend implements ResultBackend {
  readonly kind = "one";
  constructor(private readonly meta: ResultMeta) {}
  async getMeta(taskId: string): Promise<ResultMeta> {
    return taskId === this.meta.taskId ? this.meta : { taskId, status: "PENDING", result: null, traceback: null, dateDone: null };
  }
  async waitFor(taskIds: readonly string[]): Promise<Map<string, ResultMeta>> {
    return new Map(await Promise.all(taskIds.map(async (id) => [id, await this.getMeta(id)] as const)));
  }
  async forget(): Promise<void> {}
  async close(): Promise<void> {}
}

describe("what a broker URL resolves to", () => {
  it("is amqp:// for the Node entry's Celery, on every app it makes", async () => {
    // Act
    const apps = [new Celery({ broker: AMQP_URL }), new Celery({ broker: AMQP_URL })];

    // Assess
    for (const app of apps) expect(app.transport).toBeInstanceOf(AmqpTransport);
    expect(apps[0]!.transport).not.toBe(apps[1]!.transport);
    await Promise.all(apps.map((a) => a.close()));
  });

  it("is nothing for the universal Celery, even with the Node entry imported: amqp:// names sqsRelay", () => {
    // Act
    const act = (): UniversalCelery => new UniversalCelery({ broker: AMQP_URL });

    // Assess
    expect(act).toThrow(UnsupportedRuntimeError);
    expect(act).toThrow(/sqsRelay from "celery-edge\/sqs"/);
  });

  it("is the app's own transports entry, which no other app sees", async () => {
    // Prepare
    const recording = new RecordingTransport();
    const app = new UniversalCelery({ broker: "mem://queue", transports: { mem: () => recording } });

    // Act
    await app.sendTask("tasks.add", { args: [1, 2] });

    // Assess
    expect(recording.messages.map((m) => m.meta.name)).toEqual(["tasks.add"]);
    expect(() => new UniversalCelery({ broker: "mem://queue" })).toThrow(ConfigurationError);
    expect(() => new UniversalCelery({ broker: "mem://queue" })).toThrow(/unknown broker scheme mem:\/\//);
  });

  it("lets a Node app replace the amqp:// factory with its own", () => {
    // Prepare
    const recording = new RecordingTransport();

    // Act
    const app = new Celery({ broker: AMQP_URL, transports: { amqp: () => recording } });

    // Assess
    expect(app.transport).toBe(recording);
  });
});

describe("an app's serializers", () => {
  it("are json plus what the app was given: msgpack on one app does not reach another", async () => {
    // Prepare
    const withMsgpack = new UniversalCelery({ broker: new RecordingTransport(), serializers: [msgpackSerializer] });
    const jsonOnly = new UniversalCelery({ broker: new RecordingTransport() });

    // Act
    const message = await withMsgpack.buildMessage("tasks.add", { args: [1, 2], serializer: "msgpack" });
    const refused = jsonOnly.buildMessage("tasks.add", { args: [1, 2], serializer: "msgpack" });

    // Assess
    expect(message.properties.contentType).toBe("application/x-msgpack");
    await expect(refused).rejects.toThrow(ConfigurationError);
    await expect(refused).rejects.toThrow('(pass serializers: [msgpackSerializer] from "celery-edge/serializers" to this app)');
  });

  it("are kombu's four for the Node entry's Celery", async () => {
    // Prepare
    const app = new Celery({ broker: new RecordingTransport() });

    // Act
    const types = await Promise.all(["json", "yaml", "msgpack", "pickle"].map(async (serializer) => (await app.buildMessage("tasks.add", { args: [1], serializer })).properties.contentType));

    // Assess
    expect(types).toEqual(["application/json", "application/x-yaml", "application/x-msgpack", "application/x-python-serialize"]);
  });
});

describe("waiting for a result", () => {
  const stored: ResultMeta = { taskId: "t-1", status: "SUCCESS", result: 3, traceback: null, dateDone: null };

  it("throws UnsupportedRuntimeError on an app given no resultWaiting, which still sends", async () => {
    // Prepare
    const app = new UniversalCelery({ broker: new RecordingTransport(), backend: new OneResultBackend(stored) });

    // Act
    const sent = await app.sendTask("tasks.add", { args: [1, 2] });

    // Assess
    await expect(app.asyncResult("t-1").get()).rejects.toThrow(UnsupportedRuntimeError);
    expect(sent.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("reads the app's backend object once the app is given resultWaiting", async () => {
    // Prepare
    const app = new UniversalCelery({ broker: new RecordingTransport(), backend: new OneResultBackend(stored), resultWaiting });

    // Act
    const value = await app.asyncResult<number>("t-1").get();

    // Assess
    expect(value).toBe(3);
    expect(app.backend.kind).toBe("one");
  });
});

describe("revoke commands", () => {
  it("count their clock per app, from 1", async () => {
    // Prepare
    const [a, b] = [new RecordingTransport(), new RecordingTransport()];
    const appA = new UniversalCelery({ broker: a });
    const appB = new UniversalCelery({ broker: b });

    // Act
    await appA.revoke("t-1");
    await appA.revoke("t-2");
    await appB.revoke("t-3");

    // Assess
    expect(a.messages.map((m) => m.properties.headers.clock)).toEqual([1, 2]);
    expect(b.messages.map((m) => m.properties.headers.clock)).toEqual([1]);
    expect(b.messages[0]!.body).toEqual(revokeMessage("t-3", {}, 1).body);
  });
});
