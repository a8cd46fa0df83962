// Prometheus metrics for meshd-relay (prom-client), served at GET /metrics.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export const DROP_REASONS = ['no-destination', 'queue-full', 'rate-limited', 'malformed', 'oversized-frame', 'not-member'] as const;
export const REFUSE_REASONS = ['bad-proof', 'not-allowed', 'login-timeout', 'frame-before-login', 'server-full', 'malformed-login', 'not-member'] as const;
export const ROSTER_REFUSE_REASONS = [
  'roster-oversized', 'roster-malformed', 'roster-bad-signature', 'roster-wrong-mesh', 'roster-stale', 'roster-invalid',
  'roster-unknown-mesh', 'roster-not-member', 'roster-rate-limited', 'roster-busy', 'roster-out-of-order',
] as const;
export type RelayDropReason = (typeof DROP_REASONS)[number];
export type RelayRefuseReason = (typeof REFUSE_REASONS)[number];

export class RelayMetrics {
  readonly registry = new Registry();
  readonly clients = new Gauge({ name: 'meshd_relay_clients', help: 'Logged-in clients connected now', registers: [this.registry] });
  readonly connections = new Gauge({ name: 'meshd_relay_connections', help: 'WebSocket connections open now (logged in or not)', registers: [this.registry] });
  readonly logins = new Counter({ name: 'meshd_relay_logins_total', help: 'Successful logins', registers: [this.registry] });
  readonly refused = new Counter({ name: 'meshd_relay_logins_refused_total', help: 'Connections refused or closed before login, by reason', labelNames: ['reason'], registers: [this.registry] });
  /** Forwarding totals, kept as plain numbers on the hot path and read by Prometheus on scrape. */
  packets = 0;
  messages = 0;
  bytes = 0;
  readonly framesForwarded = counterOf(this, 'meshd_relay_frames_forwarded_total', 'Packets forwarded to a connected destination', () => this.packets);
  readonly messagesForwarded = counterOf(this, 'meshd_relay_messages_forwarded_total', 'WebSocket messages forwarded (a batch frame carries several packets)', () => this.messages);
  readonly bytesForwarded = counterOf(this, 'meshd_relay_bytes_forwarded_total', 'Packet bytes forwarded', () => this.bytes);
  readonly drops = new Counter({ name: 'meshd_relay_drops_total', help: 'Packets or frames dropped, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly peerNotices = new Counter({ name: 'meshd_relay_peer_notices_total', help: 'peer-present / peer-gone notices sent to clients that talked to a key that arrived or left', labelNames: ['kind'], registers: [this.registry] });
  readonly replaced = new Counter({ name: 'meshd_relay_replaced_total', help: 'Connections replaced by a newer one with the same key', registers: [this.registry] });
  readonly rosterRefusals = new Counter({ name: 'meshd_relay_rosters_refused_total', help: 'Rosters (publishes and subscribes) refused, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly rostersAccepted = new Counter({ name: 'meshd_relay_rosters_accepted_total', help: 'Newer valid rosters taken from clients', registers: [this.registry] });
  readonly rostersSent = new Counter({ name: 'meshd_relay_rosters_sent_total', help: 'Whole rosters sent to subscribers', registers: [this.registry] });
  readonly rosterDeltasSent = new Counter({ name: 'meshd_relay_roster_deltas_sent_total', help: 'Roster changes sent to subscribers as a delta from the serial they hold', registers: [this.registry] });
  readonly removedMembers = new Counter({ name: 'meshd_relay_member_connections_closed_total', help: 'Connections closed because a newer roster no longer admits the key', registers: [this.registry] });
  readonly heapTrims = new Counter({ name: 'meshd_relay_heap_trims_total', help: "Trims of the relay's JavaScript heap it started itself (V8's memory reducer off)", registers: [this.registry] });
  readonly stunRequests = new Counter({ name: 'meshd_relay_stun_requests_total', help: 'STUN binding requests answered', registers: [this.registry] });

  constructor() {
    for (const r of DROP_REASONS) this.drops.inc({ reason: r }, 0);
    for (const r of REFUSE_REASONS) this.refused.inc({ reason: r }, 0);
    for (const r of ROSTER_REFUSE_REASONS) this.rosterRefusals.inc({ reason: r }, 0);
    for (const k of ['present', 'gone']) this.peerNotices.inc({ kind: k }, 0);
    // Event-loop lag sampled once a second, not with prom-client's 10 ms timer (100 wakes a second).
    collectDefaultMetrics({ register: this.registry, prefix: 'meshd_relay_', eventLoopMonitoringPrecision: 1000 });
  }

  drop(reason: RelayDropReason, packets = 1): void {
    this.drops.inc({ reason }, packets);
  }

  forwarded(packets: number, bytes: number): void {
    this.packets += packets;
    this.messages++;
    this.bytes += bytes;
  }

  rosterRefused(reason: string): void {
    this.rosterRefusals.inc({ reason });
  }

  refuse(reason: RelayRefuseReason): void {
    this.refused.inc({ reason });
  }
}

/** A Prometheus counter whose value is read from `value()` when scraped. */
function counterOf(m: RelayMetrics, name: string, help: string, value: () => number): Counter {
  let reported = 0;
  return new Counter({
    name,
    help,
    registers: [m.registry],
    collect() {
      const v = value();
      if (v > reported) this.inc(v - reported);
      reported = v;
    },
  });
}
