// The relays a daemon uses: one RelayClient each (all connected at once), and the choice of which
// relay carries a packet to a peer: the first connected one (config order) that has not said
// recently that the peer is absent. Both peers list the same relays in practice, so they meet on
// the first healthy one, and move to the next within seconds when it dies. A relay that says the
// peer arrived (peer-present) is trusted for it again at once.
import { keyId } from '../crypto/keys.js';
import type { Logger } from '../log.js';
import type { StaticIdentity } from '../noise/handshake.js';
import { RelayClient, type RelayClientEvents } from './relay-client.js';

/** After a relay says a peer is not connected to it, prefer other relays for this long. */
export const PEER_GONE_HOLD_MS = 5_000;

export interface RelayStatus {
  url: string;
  state: string;
  latencyMs: number | null;
  lastError: string | null;
  /** Connections re-established after one was lost. */
  reconnects: number;
}

export interface RelaysEvents {
  onPacket: RelayClientEvents['onPacket'];
  onBatchEnd: NonNullable<RelayClientEvents['onBatchEnd']>;
  onStateChange: NonNullable<RelayClientEvents['onStateChange']>;
  /** A relay said the peer is not connected to it (`disconnected`: it just left). */
  onPeerGone?(key: Uint8Array, disconnected: boolean, relay: RelayClient): void;
  /** A relay said the peer logged in to it. */
  onPeerPresent?(key: Uint8Array, relay: RelayClient): void;
  onRoster?: RelayClientEvents['onRoster'];
  onRosterHeld?: RelayClientEvents['onRosterHeld'];
  onRosterDelta?: RelayClientEvents['onRosterDelta'];
  onRosterRefused?: RelayClientEvents['onRosterRefused'];
}

export class Relays {
  readonly clients: RelayClient[];
  /** relay url → peer key id → time the relay said the peer was gone. */
  private readonly gone = new Map<string, Map<string, number>>();

  constructor(urls: readonly string[], identity: () => StaticIdentity, ca: Buffer | undefined, events: RelaysEvents, log: Logger) {
    this.clients = urls.map(
      (u) =>
        new RelayClient(
          u,
          identity,
          ca,
          {
            onPacket: events.onPacket,
            onBatchEnd: events.onBatchEnd,
            onStateChange: events.onStateChange,
            onRoster: events.onRoster,
            onRosterHeld: events.onRosterHeld,
            onRosterDelta: events.onRosterDelta,
            onRosterRefused: events.onRosterRefused,
            onPeerGone: (key, disconnected, relay) => {
              this.goneMap(relay.url).set(keyId(key), Date.now());
              events.onPeerGone?.(key, disconnected, relay);
            },
            onPeerPresent: (key, relay) => {
              this.goneMap(relay.url).delete(keyId(key));
              events.onPeerPresent?.(key, relay);
            },
          },
          log,
        ),
    );
  }

  start(): void {
    for (const c of this.clients) c.start();
  }

  stop(): void {
    for (const c of this.clients) c.stop();
  }

  get anyConnected(): boolean {
    return this.clients.some((c) => c.connected);
  }

  /** The relay to use for the peer with key id `peerId` now, or null. */
  choose(peerId: string, nowMs = Date.now()): RelayClient | null {
    let fallback: RelayClient | null = null;
    for (const c of this.clients) {
      if (!c.connected) continue;
      const t = this.gone.get(c.url)?.get(peerId);
      if (t === undefined || nowMs - t > PEER_GONE_HOLD_MS) return c;
      fallback ??= c;
    }
    return fallback;
  }

  /** Sends at once via the chosen relay; returns its URL, or null if no relay could take it. */
  send(peerKey: Uint8Array, packet: Uint8Array): string | null {
    const c = this.choose(keyId(peerKey));
    return c && c.send(peerKey, packet) ? c.url : null;
  }

  sendVia(url: string, peerKey: Uint8Array, packet: Uint8Array): boolean {
    const c = this.clients.find((r) => r.url === url);
    return !!c && c.send(peerKey, packet);
  }

  /** Sends every relay's queued batch (see RelayClient.queue). */
  flush(): void {
    for (const c of this.clients) c.flush();
  }

  status(): RelayStatus[] {
    return this.clients.map((c) => ({ url: c.url, state: c.state, latencyMs: c.latencyMs, lastError: c.lastError, reconnects: c.reconnects }));
  }

  private goneMap(url: string): Map<string, number> {
    let m = this.gone.get(url);
    if (!m) this.gone.set(url, (m = new Map()));
    return m;
  }
}
