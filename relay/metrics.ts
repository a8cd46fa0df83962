// Prometheus metrics for meshd-relay (prom-client), served at GET /metrics.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export const DROP_REASONS = ['no-destination', 'queue-full', 'rate-limited', 'malformed', 'oversized-frame'] as const;
export const REFUSE_REASONS = ['bad-proof', 'not-allowed', 'login-timeout', 'frame-before-login', 'server-full', 'malformed-login'] as const;
export type RelayDropReason = (typeof DROP_REASONS)[number];
export type RelayRefuseReason = (typeof REFUSE_REASONS)[number];

export class RelayMetrics {
  readonly registry = new Registry();
  readonly clients = new Gauge({ name: 'meshd_relay_clients', help: 'Logged-in clients connected now', registers: [this.registry] });
  readonly connections = new Gauge({ name: 'meshd_relay_connections', help: 'WebSocket connections open now (logged in or not)', registers: [this.registry] });
  readonly logins = new Counter({ name: 'meshd_relay_logins_total', help: 'Successful logins', registers: [this.registry] });
  readonly refused = new Counter({ name: 'meshd_relay_logins_refused_total', help: 'Connections refused or closed before login, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly framesForwarded = new Counter({ name: 'meshd_relay_frames_forwarded_total', help: 'Packets forwarded to a connected destination', registers: [this.registry] });
  readonly bytesForwarded = new Counter({ name: 'meshd_relay_bytes_forwarded_total', help: 'Packet bytes forwarded', registers: [this.registry] });
  readonly drops = new Counter({ name: 'meshd_relay_drops_total', help: 'Packets or frames dropped, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly replaced = new Counter({ name: 'meshd_relay_replaced_total', help: 'Connections replaced by a newer one with the same key', registers: [this.registry] });
  readonly stunRequests = new Counter({ name: 'meshd_relay_stun_requests_total', help: 'STUN binding requests answered', registers: [this.registry] });

  constructor() {
    for (const r of DROP_REASONS) this.drops.inc({ reason: r }, 0);
    for (const r of REFUSE_REASONS) this.refused.inc({ reason: r }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: 'meshd_relay_' });
  }

  drop(reason: RelayDropReason): void {
    this.drops.inc({ reason });
  }

  refuse(reason: RelayRefuseReason): void {
    this.refused.inc({ reason });
  }
}
