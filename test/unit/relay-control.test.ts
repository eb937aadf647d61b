/**
 * The one control message a sender may reach workers with (functions/shared/control.ts): Celery's
 * broadcast revoke, exactly as `app.control.revoke(id)` sends it (built here with the SDK's
 * `revokeMessage`, kombu Mailbox's shape). Each refusal changes that message in one place only.
 */
import { describe, expect, it } from "vitest";
import { MAX_REVOKE_IDS, isControlEnvelope, readRevoke } from "../../functions/shared/control.js";
import { CeleryError, EnvelopeError, PolicyError } from "../../sdk/errors.js";
import type { MessageProperties, TaskMessage } from "../../sdk/protocol/message.js";
import { REVOKE_TASK_NAME, revokeMessage } from "../../sdk/revoke.js";

type Body = Record<string, unknown> & { arguments: Record<string, unknown> };

const encoder = new TextEncoder();

function bodyOf(m: TaskMessage): Body {
  return JSON.parse(new TextDecoder().decode(m.body)) as Body;
}

/** Celery's revoke of `ids`, its body changed by `change` and nothing else. */
function revokeWithBody(change: (body: Body) => void, ids: string | string[] = "t-1"): TaskMessage {
  const m = revokeMessage(ids);
  const body = bodyOf(m);
  change(body);
  return { ...m, body: encoder.encode(JSON.stringify(body)) };
}

/** Celery's revoke of "t-1" with some message fields changed. */
function revokeWith(over: Omit<Partial<TaskMessage>, "properties"> & { properties?: Partial<MessageProperties> }): TaskMessage {
  const m = revokeMessage("t-1");
  return { ...m, ...over, properties: { ...m.properties, ...over.properties } };
}

/** The error `readRevoke` throws (fails the test when it accepts the message). */
function refusal(m: TaskMessage): CeleryError {
  try {
    readRevoke(m);
  } catch (err) {
    return err as CeleryError;
  }
  throw new Error("expected readRevoke to refuse the message, it accepted it");
}

function expectPolicyRefusal(m: TaskMessage, says: RegExp): void {
  const err = refusal(m);
  expect(err).toBeInstanceOf(PolicyError);
  expect(err.code).toBe("ERR_POLICY");
  expect(err.message).toMatch(says);
}

describe("readRevoke accepts what app.control.revoke sends", () => {
  it("returns the one id of a single-task revoke", () => {
    // Arrange
    const m = revokeMessage("9c1e0b0a-3c7d-4a59-9f0e-1f3b1c2d4e5f");

    // Act
    const ids = readRevoke(m);

    // Assess
    expect(ids).toEqual(["9c1e0b0a-3c7d-4a59-9f0e-1f3b1c2d4e5f"]);
  });

  it("returns every id of a revoke of a list of tasks", () => {
    // Arrange
    const m = revokeMessage(["t-1", "t-2", "t-3"]);

    // Act
    const ids = readRevoke(m);

    // Assess
    expect(ids).toEqual(["t-1", "t-2", "t-3"]);
  });

  it("accepts the envelope's task id anywhere among the revoked ids", () => {
    // Arrange
    const m = { ...revokeMessage(["t-1", "t-2"]), meta: { id: "t-2", name: REVOKE_TASK_NAME, eta: null } };

    // Act
    const ids = readRevoke(m);

    // Assess
    expect(ids).toEqual(["t-1", "t-2"]);
  });

  it(`accepts ${MAX_REVOKE_IDS} ids`, () => {
    // Arrange
    const ids = Array.from({ length: MAX_REVOKE_IDS }, (_, i) => `t-${i}`);

    // Act
    const read = readRevoke(revokeMessage(ids));

    // Assess
    expect(read).toHaveLength(MAX_REVOKE_IDS);
  });

  it("accepts a revoke addressed to named workers", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.destination = ["celery@worker-1", "celery@worker-2"];
    });

    // Act
    const ids = readRevoke(m);

    // Assess
    expect(ids).toEqual(["t-1"]);
  });

  it("accepts a revoke without the inert terminate and signal arguments", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments = { task_id: "t-1" };
    });

    // Act
    const ids = readRevoke(m);

    // Assess
    expect(ids).toEqual(["t-1"]);
  });
});

describe("readRevoke refuses every other control method", () => {
  it.each([
    "shutdown",
    "pool_restart",
    "add_consumer",
    "cancel_consumer",
    "rate_limit",
    "time_limit",
    "ping",
    "enable_events",
    "disable_events",
    "autoscale",
    "pool_grow",
    "pool_shrink",
    "revoke_by_stamped_headers",
    "heartbeat",
    "report",
    "stats",
    "query_task",
    "Revoke",
    "revoke ",
  ])("refuses method %j", (method) => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.method = method;
    });

    // Act / Assess
    expectPolicyRefusal(m, /method .* is not allowed/);
  });

  it("refuses a body without a method", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      delete b.method;
    });

    // Act / Assess
    expectPolicyRefusal(m, /method .* is not allowed/);
  });
});

describe("readRevoke refuses a revoke that does more than discard the task", () => {
  it("refuses terminate true", () => {
    // Arrange
    const m = revokeMessage("t-1", { terminate: true });

    // Act / Assess
    expectPolicyRefusal(m, /terminate is not allowed/);
  });

  it("refuses a truthy terminate that is not true", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments.terminate = 1;
    });

    // Act / Assess
    expectPolicyRefusal(m, /terminate is not allowed/);
  });

  it("refuses signal SIGKILL even without terminate", () => {
    // Arrange
    const m = revokeMessage("t-1", { signal: "SIGKILL" });

    // Act / Assess
    expectPolicyRefusal(m, /signal is not allowed/);
  });

  it("refuses a reply_to and ticket in the body (a reply the workers would send)", () => {
    // Arrange: what kombu adds when the caller asks for replies.
    const m = revokeWithBody((b) => {
      b.ticket = "5d2c";
      b.reply_to = { exchange: "reply.celery.pidbox", routing_key: "5d2c" };
    });

    // Act / Assess
    expectPolicyRefusal(m, /body field .* is not allowed/);
  });

  it("refuses a reply_to property", () => {
    // Arrange
    const m = revokeWith({ properties: { replyTo: "5d2c.reply.celery.pidbox" } });

    // Act / Assess
    expectPolicyRefusal(m, /takes no reply/);
  });

  it("refuses a correlation id property", () => {
    // Arrange
    const m = revokeWith({ properties: { correlationId: "5d2c" } });

    // Act / Assess
    expectPolicyRefusal(m, /takes no reply/);
  });

  it.each([
    ["pattern", "celery@.*"],
    ["matcher", "pcre"],
  ])("refuses destination %s matching", (key, value) => {
    // Arrange
    const m = revokeWithBody((b) => {
      b[key] = value;
    });

    // Act / Assess
    expectPolicyRefusal(m, /pattern matching/);
  });

  it("refuses a destination that is a string rather than a list of workers", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.destination = "celery@worker-1";
    });

    // Act / Assess
    expectPolicyRefusal(m, /destination must be/);
  });

  it("refuses an extra body key", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.priority = 9;
    });

    // Act / Assess
    expectPolicyRefusal(m, /body field "priority" is not allowed/);
  });

  it("refuses an extra argument key", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments.stamped_headers = ["x"];
    });

    // Act / Assess
    expectPolicyRefusal(m, /argument "stamped_headers" is not allowed/);
  });

  it("refuses arguments that are a list", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      (b as Record<string, unknown>).arguments = ["t-1"];
    });

    // Act / Assess
    expectPolicyRefusal(m, /arguments must be a mapping/);
  });

  it("refuses a body that is a list", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), body: encoder.encode('["revoke"]') };

    // Act / Assess
    expectPolicyRefusal(m, /body must be a mapping/);
  });
});

describe("readRevoke refuses a revoke in anything but kombu's envelope", () => {
  it("refuses an extra header", () => {
    // Arrange
    const m = revokeWith({ properties: { headers: { clock: 1, expires: 0, task: "tasks.add" } } });

    // Act / Assess
    expectPolicyRefusal(m, /header "task" is not one kombu's mailbox sends/);
  });

  it("refuses a clock header that is not a number", () => {
    // Arrange
    const m = revokeWith({ properties: { headers: { clock: "1", expires: 0 } } });

    // Act / Assess
    expectPolicyRefusal(m, /header "clock"/);
  });

  it.each([
    ["application/x-yaml", "utf-8"],
    ["application/x-msgpack", "binary"],
    ["application/x-python-serialize", "binary"],
    ["application/json", "binary"],
  ])("refuses content type %s with encoding %s", (contentType, contentEncoding) => {
    // Arrange
    const m = revokeWith({ properties: { contentType, contentEncoding } });

    // Act / Assess
    expectPolicyRefusal(m, /must be JSON/);
  });

  it("refuses a routing key other than the empty one", () => {
    // Arrange
    const m = revokeWith({ routingKey: "celery@worker-1" });

    // Act / Assess
    expectPolicyRefusal(m, /routing key ""/);
  });

  it.each(["", "celery", "reply.celery.pidbox"])("refuses the exchange %j", (exchange) => {
    // Arrange
    const m = revokeWith({ exchange });

    // Act / Assess
    expectPolicyRefusal(m, /only a broadcast to celery\.pidbox/);
  });

  it("refuses a per-message expiration (kombu's mailbox sets none; a bad one closes the channel)", () => {
    // Arrange: RabbitMQ answers this with PRECONDITION_FAILED, closing the relay's channel.
    const m = revokeWith({ properties: { expiration: "abc" } });

    // Act / Assess
    expectPolicyRefusal(m, /expiration/);
  });

  it("refuses a body that is not JSON as a bad envelope", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), body: encoder.encode("{method: revoke}") };

    // Act
    const err = refusal(m);

    // Assess
    expect(err).toBeInstanceOf(EnvelopeError);
    expect(err.code).toBe("ERR_ENVELOPE");
  });

  it("refuses a body that is not UTF-8 as a bad envelope", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), body: new Uint8Array([0x7b, 0xff, 0x7d]) };

    // Act
    const err = refusal(m);

    // Assess
    expect(err).toBeInstanceOf(EnvelopeError);
  });
});

describe("readRevoke refuses task ids it cannot vouch for", () => {
  it(`refuses more than ${MAX_REVOKE_IDS} ids`, () => {
    // Arrange
    const m = revokeMessage(Array.from({ length: MAX_REVOKE_IDS + 1 }, (_, i) => `t-${i}`));

    // Act / Assess
    expectPolicyRefusal(m, /task_id must be/);
  });

  it("refuses an empty list of ids", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments.task_id = [];
    });

    // Act / Assess
    expectPolicyRefusal(m, /task_id must be/);
  });

  it("refuses a missing task_id", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      delete b.arguments.task_id;
    });

    // Act / Assess
    expectPolicyRefusal(m, /task_id must be/);
  });

  it.each([
    ["a number", ["t-1", 2]],
    ["null", ["t-1", null]],
    ["a nested list", ["t-1", ["t-2"]]],
    ["an empty string", ["t-1", ""]],
    ["a string over 255 characters", ["t-1", "x".repeat(256)]],
  ])("refuses an id that is %s", (_what, taskIds) => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments.task_id = taskIds;
    });

    // Act / Assess
    expectPolicyRefusal(m, /every task id must be a string/);
  });

  it("refuses a task_id that is a number", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.arguments.task_id = 7;
    });

    // Act / Assess
    expectPolicyRefusal(m, /task_id must be/);
  });

  it("refuses an envelope whose task id is not among the revoked ids", () => {
    // Arrange: the summary claims one task while the body revokes others.
    const m = { ...revokeMessage(["t-1", "t-2"]), meta: { id: "t-9", name: REVOKE_TASK_NAME, eta: null } };

    // Act
    const err = refusal(m);

    // Assess
    expect(err).toBeInstanceOf(EnvelopeError);
    expect(err.code).toBe("ERR_ENVELOPE");
    expect(err.message).toContain("not among the revoked ids");
  });

  it("cuts an attacker's long method name in the refusal", () => {
    // Arrange
    const m = revokeWithBody((b) => {
      b.method = "x".repeat(1_000_000);
    });

    // Act
    const err = refusal(m);

    // Assess
    expect(err.message.length).toBeLessThan(300);
  });
});

describe("isControlEnvelope", () => {
  it("takes a message to celery.pidbox as control", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), meta: { id: "t-1", name: "tasks.add", eta: null } };

    // Act / Assess
    expect(isControlEnvelope(m)).toBe(true);
  });

  it("takes an envelope summarised as a revoke as control wherever it is addressed", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), exchange: "", routingKey: "celery" };

    // Act / Assess
    expect(isControlEnvelope(m)).toBe(true);
  });

  it("does not take a task to another exchange as control", () => {
    // Arrange
    const m = { ...revokeMessage("t-1"), exchange: "", routingKey: "celery", meta: { id: "t-1", name: "tasks.add", eta: null } };

    // Act / Assess
    expect(isControlEnvelope(m)).toBe(false);
  });
});
