// What the tunnel asks the I/O layer to do: datagrams to send and packets to write to the TUN.
// The device fills it; the daemon (or a test) drains it. Arrays are reused between drains.
import { clearArray, objectArray } from './clear-array.js';
import type { Endpoint } from './endpoint.js';

export interface Datagram {
  /** null when the peer has no known endpoint: the transport decides (drop, or a relay). */
  to: Endpoint | null;
  data: Uint8Array;
  /** The peer it is for (its public key id), so a path layer can choose relay vs direct. */
  peerId: string;
}

/**
 * Sealed transport messages for one peer that lie where they were sealed (the fast path's TUN batch):
 * message i is buf[offsets[i], +lengths[i]) for i in [start, start + count). Like the views in
 * `net`, valid only until the Outbox is drained.
 */
export interface DatagramRun {
  to: Endpoint | null;
  peerId: string;
  buf: Uint8Array;
  offsets: Int32Array;
  lengths: Int32Array;
  start: number;
  count: number;
}

export type DeviceEvent =
  | { type: 'handshake-complete'; peerId: string; initiator: boolean }
  | { type: 'handshake-initiated'; peerId: string; attempt: number }
  | { type: 'handshake-gave-up'; peerId: string }
  | { type: 'endpoint-changed'; peerId: string; endpoint: Endpoint }
  | { type: 'keys-zeroed'; peerId: string };

export class Outbox {
  readonly net: Datagram[] = objectArray();
  /** Data sealed a batch at a time (DeviceOptions.inPlace with a batch AEAD); sent after `net`. */
  readonly runs: DatagramRun[] = objectArray();
  readonly tun: Uint8Array[] = objectArray();
  readonly events: DeviceEvent[] = objectArray();

  clear(): void {
    clearArray(this.net);
    clearArray(this.runs);
    clearArray(this.tun);
    clearArray(this.events);
  }
}
