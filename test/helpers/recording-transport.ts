/**
 * A Transport that keeps what it is given instead of sending it: for unit tests of message
 * building only (end-to-end tests use the real broker).
 */
import type { PublishOutcome, Transport } from "../../sdk/transport.js";
import type { PublishReceipt, TaskMessage } from "../../sdk/protocol/message.js";

export class RecordingTransport implements Transport {
  readonly kind = "recording";
  readonly messages: TaskMessage[] = [];
  async publish(message: TaskMessage): Promise<PublishReceipt> {
    this.messages.push(message);
    return { id: message.meta.id };
  }
  async publishMany(messages: readonly TaskMessage[]): Promise<PublishOutcome[]> {
    return Promise.all(messages.map(async (m) => ({ ok: true as const, receipt: await this.publish(m) })));
  }
  async close(): Promise<void> {}
}
