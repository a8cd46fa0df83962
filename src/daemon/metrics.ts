// Prometheus metrics for the daemon (MetricsListen = IP:PORT; off by default), served at GET /metrics.
// Every figure comes from the same DaemonStatus that `meshd status --json` prints, taken once per
// scrape, so the two never disagree. Per-peer series stop above METRICS_PEER_LIMIT peers (the
// aggregates stay), so a 10,000-peer config cannot produce a million series.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { INSIDE_DROP_REASONS, OUTSIDE_DROP_REASONS } from '../tunnel/drops.js';
import type { DaemonStatus, PeerStatus } from './status.js';

/** How often the event-loop lag histogram (nodejs_eventloop_lag_p99_seconds...) samples. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** Peers up to which each has its own series; above it only aggregates are exported. */
export const METRICS_PEER_LIMIT = 256;

/** The label a peer's series carry: its name, else the first 8 characters of its key. */
function peerLabels(peers: PeerStatus[]): string[] {
  const seen = new Set<string>();
  return peers.map((p) => {
    const short = p.publicKey.slice(0, 8);
    let label = p.name ?? short;
    if (seen.has(label)) label = `${label}/${short}`;
    seen.add(label);
    return label;
  });
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private current: DaemonStatus | null = null;

  constructor(
    private readonly snapshot: () => Promise<DaemonStatus>,
    private readonly wallNow: () => number = Date.now,
  ) {
    const r = this.registry;
    const s = (): DaemonStatus | null => this.current;
    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, st: DaemonStatus) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          const st = s();
          if (st) fill(this, st);
        },
      });
    const counter = (name: string, help: string, labelNames: string[], fill: (set: (labels: Record<string, string>, v: number) => void, st: DaemonStatus) => void) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect() {
          this.reset();
          const st = s();
          if (!st) return;
          fill((labels, v) => this.inc(labels, Math.max(0, v)), st);
        },
      });
    const perPeer = (st: DaemonStatus) => st.peers.length <= METRICS_PEER_LIMIT;

    gauge('meshd_info', 'The daemon: its interface, public key and data path (always 1).', ['interface', 'public_key', 'udp', 'aead'], (g, st) =>
      g.set({ interface: st.interface, public_key: st.publicKey, udp: st.dataPath.udp, aead: st.dataPath.aead }, 1),
    );
    gauge('meshd_peers', 'Peers by the path their packets take now.', ['path'], (g, st) => {
      const by: Record<string, number> = { direct: 0, relay: 0, none: 0 };
      for (const p of st.peers) by[p.path.kind]++;
      for (const [path, n] of Object.entries(by)) g.set({ path }, n);
    });
    gauge('meshd_metrics_per_peer', `1 while each peer has its own series (at most ${METRICS_PEER_LIMIT} peers), 0 when only aggregates are exported.`, [], (g, st) =>
      g.set(perPeer(st) ? 1 : 0),
    );
    counter('meshd_receive_bytes_total', 'Bytes received from all peers (WireGuard messages).', [], (set, st) => set({}, st.peers.reduce((a, p) => a + p.rxBytes, 0)));
    counter('meshd_transmit_bytes_total', 'Bytes sent to all peers (WireGuard messages).', [], (set, st) => set({}, st.peers.reduce((a, p) => a + p.txBytes, 0)));
    counter('meshd_peer_receive_bytes_total', 'Bytes received from the peer.', ['peer'], (set, st) => {
      if (!perPeer(st)) return;
      peerLabels(st.peers).forEach((peer, i) => set({ peer }, st.peers[i].rxBytes));
    });
    counter('meshd_peer_transmit_bytes_total', 'Bytes sent to the peer.', ['peer'], (set, st) => {
      if (!perPeer(st)) return;
      peerLabels(st.peers).forEach((peer, i) => set({ peer }, st.peers[i].txBytes));
    });
    gauge('meshd_peer_last_handshake_age_seconds', 'Seconds since the latest completed handshake with the peer (absent before the first).', ['peer'], (g, st) => {
      if (!perPeer(st)) return;
      const now = this.wallNow();
      peerLabels(st.peers).forEach((peer, i) => {
        const at = st.peers[i].latestHandshake;
        if (at !== null) g.set({ peer }, Math.max(0, (now - at) / 1000));
      });
    });
    gauge('meshd_peer_path', 'The path the peer\'s packets take now (1 for the kind in use).', ['peer', 'kind'], (g, st) => {
      if (!perPeer(st)) return;
      peerLabels(st.peers).forEach((peer, i) => g.set({ peer, kind: st.peers[i].path.kind }, 1));
    });
    gauge('meshd_peer_rtt_seconds', 'Round-trip time to the peer on its direct path (disco pings), when known.', ['peer'], (g, st) => {
      if (!perPeer(st)) return;
      peerLabels(st.peers).forEach((peer, i) => {
        const rtt = st.peers[i].rttMs;
        if (rtt !== null) g.set({ peer }, rtt / 1000);
      });
    });
    gauge('meshd_peer_path_mtu_bytes', 'The largest packet sent to the peer now (its probed path MTU, or the interface MTU).', ['peer'], (g, st) => {
      if (!perPeer(st)) return;
      peerLabels(st.peers).forEach((peer, i) => g.set({ peer }, st.peers[i].pathMtu.mtu));
    });
    const c = (st: DaemonStatus, k: string) => st.counters[k] ?? 0;
    counter('meshd_handshake_initiations_sent_total', 'Handshake initiations sent.', [], (set, st) => set({}, c(st, 'handshakeInitiationsSent')));
    counter('meshd_handshake_initiations_received_total', 'Handshake initiations received that authenticated.', [], (set, st) => set({}, c(st, 'handshakeInitiationsReceived')));
    counter('meshd_handshake_responses_received_total', 'Handshake responses received that authenticated.', [], (set, st) => set({}, c(st, 'handshakeResponsesReceived')));
    counter('meshd_handshakes_completed_total', 'Sessions established, by our role.', ['role'], (set, st) => {
      set({ role: 'initiator' }, c(st, 'handshakesCompletedAsInitiator'));
      set({ role: 'responder' }, c(st, 'handshakesCompletedAsResponder'));
    });
    counter('meshd_handshakes_failed_total', 'Peers given up on after REKEY_ATTEMPT_TIME of unanswered initiations.', [], (set, st) => set({}, c(st, 'handshakesFailed')));
    counter('meshd_udp_source_refused_total', 'Replies whose sticky source address the kernel refused (it was removed) and that left without it.', [], (set, st) =>
      set({}, c(st, 'udpSourceRefused')),
    );
    counter('meshd_heap_trims_total', 'Compacting GCs the daemon ran to give its JavaScript heap back (after start-up, then after bursts once the tunnel is quiet).', [], (set, st) =>
      set({}, c(st, 'heapTrims')),
    );
    counter('meshd_drops_total', 'Packets dropped, by direction (outside: from the network; inside: from the TUN) and reason (as meshd status).', ['direction', 'reason'], (set, st) => {
      const out: Record<string, number> = Object.fromEntries(OUTSIDE_DROP_REASONS.map((r) => [r, 0]));
      const ins: Record<string, number> = Object.fromEntries(INSIDE_DROP_REASONS.map((r) => [r, 0]));
      for (const [reason, n] of Object.entries({ ...out, ...st.drops.outside })) set({ direction: 'outside', reason }, n);
      for (const [reason, n] of Object.entries({ ...ins, ...st.drops.inside })) set({ direction: 'inside', reason }, n);
    });
    gauge('meshd_relay_up', 'Relay connections: 1 when logged in.', ['relay'], (g, st) => {
      for (const rl of st.relays) g.set({ relay: rl.url }, rl.state === 'connected' ? 1 : 0);
    });
    counter('meshd_relay_reconnects_total', 'Relay connections re-established after one was lost.', ['relay'], (set, st) => {
      for (const rl of st.relays) set({ relay: rl.url }, rl.reconnects);
    });
    gauge('meshd_relay_latency_seconds', 'Round-trip time to the relay (its keepalives), when known.', ['relay'], (g, st) => {
      for (const rl of st.relays) if (rl.latencyMs !== null) g.set({ relay: rl.url }, rl.latencyMs / 1000);
    });
    gauge('meshd_roster_serial', 'Serial of the roster this host follows (mesh only).', [], (g, st) => {
      if (st.mesh) g.set(st.mesh.serial);
    });
    gauge('meshd_mesh_members', 'Members the roster lists (mesh only).', [], (g, st) => {
      if (st.mesh) g.set(st.mesh.members);
    });
    counter('meshd_rosters_rejected_total', 'Rosters refused, by reason (mesh only).', ['reason'], (set, st) => {
      if (st.mesh) for (const [reason, n] of Object.entries(st.mesh.rejected)) set({ reason }, n);
    });
    // The event-loop lag histogram samples with a timer of its own: at prom-client's default (10 ms)
    // an idle daemon woke 100 times a second instead of ~5 (and used twice the CPU). Once a second
    // still catches a blocked loop; the lag gauge proper is measured at each scrape.
    collectDefaultMetrics({ register: r, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** The text a scrape gets: one status snapshot for every metric. */
  async render(): Promise<string> {
    this.current = await this.snapshot();
    try {
      return await this.registry.metrics();
    } finally {
      this.current = null;
    }
  }
}

/** Serves `metrics` at http://host:port/metrics; resolves once listening, rejects with the bind error. */
export function serveMetrics(metrics: DaemonMetrics, host: string, port: number, onError: (err: Error) => void): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => {
        onError(err);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.maxHeadersCount = 50;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve(server);
    });
  });
}
