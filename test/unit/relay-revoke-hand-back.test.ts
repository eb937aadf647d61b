/**
 * A relay without trusted forwarders (a local run that left TRUSTED_FORWARDERS empty) broadcasts a
 * revoke at once and also gives it to the scheduler, which hands back, marked broadcast, the ids it
 * has no schedule for. That hand-back must end at the workers, not go round again.
 */
import { describe, expect, it } from "vitest";
import { relayRecord, type RelayDeps } from "../../functions/relay/relay.js";
import { resolvePolicy } from "../../functions/shared/policy.js";
import { revokeMessage } from "../../sdk/revoke.js";
import { encodeEnvelope } from "../../sdk/wire/envelope.js";
import { RecordingTransport } from "../helpers/recording-transport.js";
import { recordingLogger } from "../helpers/relay-input.js";
import { sqsRecord } from "../helpers/sqs-record.js";

function relayWithoutForwarders(): { deps: RelayDeps; broker: RecordingTransport; scheduler: RecordingTransport } {
  const broker = new RecordingTransport();
  const scheduler = new RecordingTransport();
  const deps: RelayDeps = {
    broker,
    policy: resolvePolicy({}),
    trustedForwarders: [],
    forceMandatory: true,
    logger: recordingLogger(),
    park: { transport: scheduler, thresholdSeconds: 900 },
  };
  return { deps, broker, scheduler };
}

describe("relay without trusted forwarders: revokes", () => {
  it("broadcasts a sender's revoke and gives it to the scheduler to delete a parked schedule", async () => {
    const { deps, broker, scheduler } = relayWithoutForwarders();

    await relayRecord(sqsRecord(encodeEnvelope(revokeMessage("t-1")), "m-1"), deps);

    expect(broker.messages.map((m) => m.exchange)).toEqual(["celery.pidbox"]);
    expect(scheduler.messages).toHaveLength(1);
  });

  it("broadcasts the scheduler's hand-back once and does not send it back to the scheduler", async () => {
    const { deps, broker, scheduler } = relayWithoutForwarders();
    const revoke = revokeMessage("t-2");
    const handBack = encodeEnvelope({ ...revoke, meta: { ...revoke.meta, sender: "AROASCHEDULER", stage: "broadcast" } });

    await relayRecord(sqsRecord(handBack, "m-2"), deps);

    expect(broker.messages.map((m) => m.exchange)).toEqual(["celery.pidbox"]);
    expect(scheduler.messages).toHaveLength(0);
  });
});
