/**
 * The waits in flight that the redis and rpc result backends share (sdk/backends/waiters.ts).
 */
import { describe, expect, it } from "vitest";
import type { ResultMeta } from "../../sdk/backends/backend.js";
import { WaiterRegistry, type Wait } from "../../sdk/backends/waiters.js";
import { ResultBackendError, TimeoutError } from "../../sdk/errors.js";

function meta(taskId: string, status = "SUCCESS", result: unknown = taskId): ResultMeta {
  return { taskId, status, result, traceback: null, dateDone: null };
}

/** A registry that records the ids it was told to start and stop watching. */
function recordingRegistry() {
  const watched: string[][] = [];
  const unwatched: string[][] = [];
  const registry = new WaiterRegistry({
    where: "redis://localhost:6379/0",
    watch: (ids) => watched.push(ids),
    unwatch: (ids) => unwatched.push(ids),
  });
  return { registry, watched, unwatched };
}

describe("WaiterRegistry", () => {
  it("resolves a wait once every id has a ready meta, in the order they came", async () => {
    // Arrange
    const { registry } = recordingRegistry();
    const waiting = registry.wait(["a", "b"]);

    // Act
    registry.deliver("b", meta("b"));
    registry.deliver("a", meta("a"));

    // Assert
    expect([...(await waiting).keys()]).toEqual(["b", "a"]);
  });

  it("hands one meta to every wait of its id", async () => {
    // Arrange
    const { registry } = recordingRegistry();
    const first = registry.wait(["a"]);
    const second = registry.wait(["a", "b"]);

    // Act
    registry.deliver("a", meta("a"));
    registry.deliver("b", meta("b"));

    // Assert
    expect((await first).get("a")).toEqual(meta("a"));
    expect([...(await second).values()]).toEqual([meta("a"), meta("b")]);
  });

  it("ends no wait on a state that is not ready", async () => {
    // Arrange
    const { registry } = recordingRegistry();
    const waiting = registry.wait(["a"]);

    // Act
    registry.deliver("a", meta("a", "STARTED"));
    registry.deliver("a", meta("a", "RETRY"));
    registry.deliver("a", meta("a", "FAILURE", { exc_type: "ValueError" }));

    // Assert
    expect((await waiting).get("a")?.status).toBe("FAILURE");
  });

  it("rejects with TimeoutError naming the one id still pending", async () => {
    // Arrange
    const { registry } = recordingRegistry();
    const waiting = registry.wait(["a", "b"], { timeout: 20 });

    // Act
    registry.deliver("a", meta("a"));
    const error = await waiting.catch((e: unknown) => e);

    // Assert
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).message).toBe("timed out after 20 ms waiting for task b");
  });

  it("names at most three of the ids still pending and how many of all they are", async () => {
    // Arrange
    const { registry } = recordingRegistry();

    // Act
    const error = await registry.wait(["a", "b", "c", "d", "e"], { timeout: 10 }).catch((e: unknown) => e);

    // Assert
    expect((error as TimeoutError).message).toBe("timed out after 10 ms waiting for 5 of 5 tasks (a, b, c, …)");
  });

  it("watches an id when its first wait comes and unwatches it when its last wait leaves", async () => {
    // Arrange
    const { registry, watched, unwatched } = recordingRegistry();
    const first = registry.wait(["a", "b"]);
    const second = registry.wait(["b", "c"], { timeout: 10 });

    // Act
    await second.catch(() => {});
    const afterTimeout = { unwatched: [...unwatched], a: registry.has("a"), b: registry.has("b"), c: registry.has("c") };
    registry.deliver("a", meta("a"));
    registry.deliver("b", meta("b"));
    await first;

    // Assert
    expect(watched).toEqual([["a", "b"], ["c"]]);
    expect(afterTimeout).toEqual({ unwatched: [["c"]], a: true, b: true, c: false });
    expect(unwatched).toEqual([["c"], ["a", "b"]]);
    expect(registry.has("b")).toBe(false);
  });

  it("resolves at once from known metas, registering and starting nothing", async () => {
    // Arrange
    const { registry, watched } = recordingRegistry();
    let started = false;

    // Act
    const metas = await registry.wait(["a", "b"], {
      known: (id) => meta(id),
      start: async () => {
        started = true;
      },
    });

    // Assert
    expect([...metas.keys()]).toEqual(["a", "b"]);
    expect({ started, watched }).toEqual({ started: false, watched: [] });
  });

  it("waits only for the ids without a known ready meta", async () => {
    // Arrange
    const { registry, watched } = recordingRegistry();
    const waits: Wait[] = [];
    const waiting = registry.wait(["a", "b", "c"], {
      known: (id) => (id === "a" ? meta("a") : id === "b" ? meta("b", "STARTED") : undefined),
      start: async (wait) => {
        waits.push(wait);
      },
    });

    // Act
    registry.deliver("b", meta("b"));
    registry.deliver("c", meta("c"));

    // Assert
    expect(watched).toEqual([["b", "c"]]);
    expect(waits[0]?.ids).toEqual(["a", "b", "c"]);
    expect([...(await waiting).keys()]).toEqual(["a", "b", "c"]);
    expect(waits[0]?.pending.size).toBe(0);
  });

  it("ends the wait with a ResultBackendError naming the server when start fails with a plain error", async () => {
    // Arrange
    const { registry, unwatched } = recordingRegistry();

    // Act
    const error = await registry.wait(["a"], { start: () => Promise.reject(new Error("ECONNREFUSED")) }).catch((e: unknown) => e);

    // Assert
    expect(error).toBeInstanceOf(ResultBackendError);
    expect((error as ResultBackendError).message).toBe("waiting for results on redis://localhost:6379/0: ECONNREFUSED");
    expect(unwatched).toEqual([["a"]]);
  });

  it("rejects only the waits of one id with rejectFor, and every wait with rejectAll", async () => {
    // Arrange
    const { registry } = recordingRegistry();
    const ofA = registry.wait(["a"]);
    const ofAB = registry.wait(["a", "b"]);
    const ofC = registry.wait(["c"]);
    const undecodable = new ResultBackendError("cannot decode the stored result of task a");
    const lost = new ResultBackendError("lost the connection");

    // Act
    registry.rejectFor("a", undecodable);
    const [a, ab] = await Promise.all([ofA.catch((e: unknown) => e), ofAB.catch((e: unknown) => e)]);
    const cStillWaiting = registry.has("c");
    registry.rejectAll(lost);

    // Assert
    expect([a, ab, cStillWaiting]).toEqual([undecodable, undecodable, true]);
    await expect(ofC).rejects.toBe(lost);
    expect(["a", "b", "c"].some((id) => registry.has(id))).toBe(false);
  });

  it("resolves an empty wait at once", async () => {
    // Arrange
    const { registry } = recordingRegistry();

    // Act
    const metas = await registry.wait([]);

    // Assert
    expect(metas.size).toBe(0);
  });
});
