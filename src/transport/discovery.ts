// Path discovery (DESIGN §4): disco ping / pong / call-me-maybe between peers, the UDP hole punch,
// and the upgrade of a peer to a direct path. Sans-IO: time comes from the device clock, and what
// to send is queued in `out` (to a UDP endpoint, back through the relay it came from, or via the
// peer's relay when `to` is null).
//  1. Punch: for an active peer without a confirmed direct path, every PUNCH_INTERVAL_MS (and at
//     once when our candidates change or a call-me-maybe arrives) ping every candidate of the peer
//     and send it our candidates via the relay. Both sides' outbound pings open their NATs.
//  2. A pong from a candidate proves the path: it becomes the peer's WireGuard endpoint if it is
//     better (no confirmed path yet, or clearly lower RTT: hysteresis), and confirms it for a while.
//  3. Heartbeat: while the direct path is in use, ping it every HEARTBEAT_INTERVAL_MS; when pongs and
//     WireGuard packets stop, the path expires and traffic also goes via the relay (path.ts).
import { randomBytes } from 'node:crypto';
import { keyId } from '../crypto/keys.js';
import { discoKey, openDisco, sealDisco } from '../crypto/disco-box.js';
import {
  DISCO_CAP_BIRTHDAY,
  DISCO_CAP_PORTS_IN_ORDER,
  DISCO_OVERHEAD,
  DISCO_TXID_LEN,
  decodeDiscoEnvelope,
  decodeDiscoMessage,
  encodeDiscoEnvelope,
  encodeDiscoMessage,
  type DiscoMessage,
} from '../wire/disco.js';
import type { Device } from '../tunnel/device.js';
import { DropCounters } from '../tunnel/drops.js';
import { endpointEqual, formatEndpoint, type Endpoint } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import { isDirectConfirmed } from './path.js';
import { TRANSPORT_HEADER_SIZE } from '../wire/wireguard.js';
import { AEAD_TAG_LEN } from '../crypto/aead.js';
import { PMTU_COPIES, PathMtuSearch } from './path-mtu.js';
import { BirthdayProber, type BirthdayEvent, type PeerAnnouncement } from './birthday-probe.js';
import type { BirthdayLimits } from './birthday.js';

/**
 * A mesh's roster told peer to peer (DESIGN.md §9, convergence): pings and pongs carry the serial a
 * host runs; a host that hears a lower one answers with a delta (if it has one small enough), and a
 * delta received is checked like any roster.
 */
export interface RosterGossip {
  serial(): number;
  /** The peer said it runs `serial`: a delta to send it, or null (not behind, none small enough, sent lately). */
  peerHolds(peer: Peer, serial: number, nowMs: number): Uint8Array | null;
  fromPeer(peer: Peer, delta: Uint8Array): void;
}

export const PUNCH_INTERVAL_MS = 5_000;
export const HEARTBEAT_INTERVAL_MS = 2_000;
/** While a direct path is in use, all candidates are pinged this often, so a better one is found. */
export const FULL_DISCOVERY_INTERVAL_MS = 30_000;
/**
 * A peer is worth punching to and heartbeating while data flowed to or from it this recently (or
 * for this long after it appears): an idle mesh goes quiet, as Tailscale's does after 45 s.
 */
export const ACTIVE_WINDOW_MS = 45_000;
/** How often the tick looks at every peer, not only the watched ones (a safety net: peers become
 *  watched as soon as they have traffic, a message or packets waiting). */
export const FULL_SCAN_MS = 10_000;
export const PING_TIMEOUT_MS = 5_000;
/**
 * How long call-me-maybes carry a fresh port (announceFreshPort): an attempt's probing window is 5 s,
 * and a NAT that hands out ports in order has moved on after that.
 */
export const FRESH_PORT_TTL_MS = 6000;
/** Answering a call-me-maybe with our own at most this often per peer. */
export const CALL_ME_MAYBE_MIN_INTERVAL_MS = 1_000;
/** A new path replaces a confirmed one only when its RTT is below this fraction of the old one's. */
export const BETTER_RTT_FACTOR = 0.9;
export const MAX_CANDIDATES_PER_PEER = 32;
/** A ping from a candidate is answered with a ping of our own (the punch back) at most this often. */
export const PUNCH_BACK_MIN_INTERVAL_MS = 250;
/** What a WireGuard data packet adds to the inner packet it carries: header and tag. */
const TRANSPORT_DATA_OVERHEAD = TRANSPORT_HEADER_SIZE + AEAD_TAG_LEN;

export const DISCO_DROP_REASONS = ['disco-malformed', 'disco-unknown-sender', 'disco-bad-box', 'disco-bad-message', 'disco-unexpected-pong'] as const;
export type DiscoDropReason = (typeof DISCO_DROP_REASONS)[number];

export interface DiscoSend {
  /** A UDP endpoint, a relay endpoint (reply the way it came), or null: via the peer's relay. */
  to: Endpoint | null;
  peerId: string;
  data: Uint8Array;
}

export interface PongResult {
  /** The UDP endpoint that answered, or null when the pong came through a relay. */
  via: Endpoint | null;
  relay: string | null;
  rttMs: number;
}

interface Candidate {
  ep: Endpoint;
  source: string;
  /** When a ping from this candidate asked us to punch back but we had just pinged it. */
  punchBackAtMs: number;
  lastPingMs: number;
  lastPongMs: number;
  rttMs: number | null;
}

interface PeerDisco {
  key: Uint8Array | null;
  firstSeenMs: number;
  candidates: Map<string, Candidate>;
  lastPunchMs: number;
  lastCallMeMaybeSentMs: number;
  lastHeartbeatMs: number;
  bestRttMs: number | null;
  /** The path MTU search of the peer's direct endpoint (when Discovery.pathMtu is on). */
  pmtu: PathMtuSearch | null;
  /** The peer's latest call-me-maybe: its NAT kind and capabilities, and its candidates. */
  told: PeerAnnouncement;
}

interface PendingPing {
  peerId: string;
  to: Endpoint | null;
  sentMs: number;
  waiter?: (r: PongResult | null) => void;
  /** A path MTU probe: the size it tests. */
  probe?: number;
}

export type DiscoEvent = { type: 'direct-path'; peerId: string; endpoint: Endpoint; rttMs: number } | BirthdayEvent;

/** A candidate's key: its address, and the extra socket it is reached from (birthday probing). */
const epKey = (e: Endpoint): string => (e.sock === undefined ? formatEndpoint(e) : `${formatEndpoint(e)}#${e.sock}`);

export class Discovery {
  readonly out: DiscoSend[] = [];
  readonly events: DiscoEvent[] = [];
  readonly drops = new DropCounters<DiscoDropReason>(DISCO_DROP_REASONS);
  /** Disco messages sent and received, by type (for status and the benchmark's packet counts). */
  readonly sent = { ping: 0, pong: 0, 'call-me-maybe': 0, redeem: 0, 'redeem-result': 0, 'roster-delta': 0 };
  readonly received = { ping: 0, pong: 0, 'call-me-maybe': 0, redeem: 0, 'redeem-result': 0, 'roster-delta': 0 };
  /** In a mesh: the roster serial pings and pongs carry, and what to do with a peer's (see RosterGossip). */
  roster: RosterGossip | null = null;
  /**
   * Probe each direct path's MTU with padded pings (path-mtu.ts) and keep Peer.pathMtu up to date
   * (the daemon turns it on when the config sets no MTU). Off: Peer.pathMtu is left alone.
   */
  pathMtu = false;
  /** Our NAT kind from STUN (true: the mapping varies by destination), told to peers in call-me-maybe. */
  ownNat: () => boolean | null = () => null;
  /** Whether our NAT hands out ports in order (OwnEndpoints.portsInOrder), told to peers in call-me-maybe. */
  ownPortsInOrder: () => boolean = () => false;
  /** Birthday probing towards relayed peers across one symmetric NAT (enableBirthday); null: off. */
  birthday: BirthdayProber | null = null;
  /** Path MTU probes sent (padded pings; also counted in sent.ping). */
  pathMtuProbesSent = 0;
  private readonly state = new Map<string, PeerDisco>();
  private readonly pending = new Map<string, PendingPing>();
  /** Peers the tick looks at (see tick) and when it next looks at all of them. */
  private readonly watched = new Set<Peer>();
  private nextFullScanMs = -Infinity;
  /** Candidates with a deferred punch-back, so the tick need not look at every candidate. */
  private punchBacksDue = 0;
  /** The latest fresh port of ours (announceFreshPort), and when it was mapped. */
  private freshPort: { port: number; atMs: number } | null = null;

  constructor(
    private readonly dev: Device,
    private readonly ownCandidates: () => Endpoint[],
    private readonly relayAvailable: () => boolean,
  ) {}

  /** A disco datagram from a UDP endpoint or through a relay. */
  handle(b: Uint8Array, from: Endpoint): void {
    const env = decodeDiscoEnvelope(b);
    if (!env) return this.drops.add('disco-malformed');
    const peer = this.dev.peers.get(keyId(env.sender));
    if (!peer) return this.drops.add('disco-unknown-sender'); // before any crypto
    const st = this.stateOf(peer);
    if (!st.key) return this.drops.add('disco-bad-box');
    const plain = openDisco(st.key, env.nonce, env.sealed, env.sender);
    if (!plain) return this.drops.add('disco-bad-box');
    const msg = decodeDiscoMessage(plain);
    if (!msg) return this.drops.add('disco-bad-message');
    const now = this.dev.clock.now();
    this.received[msg.type]++;
    if (from.sock !== undefined) this.birthday?.heardOn(peer, from.sock);
    this.watched.add(peer);
    if ((msg.type === 'ping' || msg.type === 'pong') && msg.serial !== undefined && this.roster) {
      const delta = this.roster.peerHolds(peer, msg.serial, now);
      if (delta) this.send(peer, { type: 'roster-delta', delta }, from);
    }
    switch (msg.type) {
      case 'roster-delta':
        this.roster?.fromPeer(peer, msg.delta);
        return;
      case 'ping':
        this.send(peer, { type: 'pong', txid: msg.txid, src: from.relay ? null : from, serial: this.roster?.serial() }, from);
        if (!from.relay) {
          this.addCandidate(st, from, 'ping');
          // Punch back: our pong alone does not give us a pong of our own. If we pinged this
          // address a moment ago (possibly before its NAT let us in), ping again a little later.
          const c = st.candidates.get(epKey(from));
          if (c && !isDirectConfirmed(peer, now)) {
            if (now - c.lastPingMs > PUNCH_BACK_MIN_INTERVAL_MS) this.ping(peer, from);
            else {
              if (c.punchBackAtMs === Infinity) this.punchBacksDue++;
              c.punchBackAtMs = c.lastPingMs + PUNCH_BACK_MIN_INTERVAL_MS;
            }
          }
        }
        return;
      case 'pong':
        return this.onPong(peer, st, msg.txid, from, now);
      case 'call-me-maybe': {
        // A peer asks for a path while ours to it runs through a birthday socket of its: that socket
        // is gone (a restart). Stop trusting the path, so traffic goes via the relay at once.
        if (from.relay && this.birthday?.found(peer, peer.endpoint) && isDirectConfirmed(peer, now)) peer.lastDirectRxMs = 0;
        {
          // A peer's NAT kind as last known: one call-me-maybe sent before its STUN round finished
          // (unknown) does not make it unknown again.
          const varies = msg.nat === 'varies' ? true : msg.nat === 'independent' ? false : (st.told.nat?.mappingVaries ?? null);
          const caps = msg.caps ?? 0;
          const fresh = msg.fresh ?? [];
          // When these fresh ports first came: the same ones told again are not news.
          const same = fresh.length > 0 && fresh.length === st.told.fresh.length && fresh.every((port, i) => port === st.told.fresh[i]);
          st.told = {
            nat: msg.nat === undefined ? null : { mappingVaries: varies, birthday: (caps & DISCO_CAP_BIRTHDAY) !== 0, inOrder: (caps & DISCO_CAP_PORTS_IN_ORDER) !== 0 },
            candidates: msg.candidates,
            fresh,
            freshAtMs: fresh.length === 0 ? undefined : same ? st.told.freshAtMs : now,
          };
        }
        // Answer with our own candidates when this one told us something new (so both sides
        // punch at once; two peers that know each other's candidates stop answering), or when
        // we have not sent any for a while.
        let news = false;
        for (const c of msg.candidates) {
          news ||= !st.candidates.has(epKey(c));
          this.addCandidate(st, c, 'call-me-maybe');
        }
        if (news || now - st.lastCallMeMaybeSentMs > CALL_ME_MAYBE_MIN_INTERVAL_MS) this.sendCallMeMaybe(peer, st, now);
        this.punch(peer, st, now);
        // A fresh port just told: when both sides are hard, our attempt starts (or probes) now, not
        // at the next tick (the sooner the probes, the fewer ports other flows take meanwhile).
        if (st.told.freshAtMs === now && from.relay && !isDirectConfirmed(peer, now)) this.birthday?.step(peer, st.told, now, true);
        return;
      }
      default:
        // Invitation messages come from keys that are not peers yet (see daemon/invites.ts).
        return this.drops.add('disco-bad-message');
    }
  }

  /**
   * Runs punches and heartbeats that are due. Only watched peers are looked at: those active at the
   * last full scan (every FULL_SCAN_MS), those the device noted waking up (data after idle, packets
   * waiting for a session) and those with a message or a punch-back since. An idle peer costs nothing.
   */
  tick(): void {
    const now = this.dev.clock.now();
    for (const [tx, p] of this.pending) {
      if (now - p.sentMs > PING_TIMEOUT_MS) {
        this.pending.delete(tx);
        p.waiter?.(null);
      }
    }
    if (now >= this.nextFullScanMs) {
      this.nextFullScanMs = now + FULL_SCAN_MS;
      for (const id of this.state.keys()) {
        if (this.dev.peers.has(id)) continue;
        this.state.delete(id);
        this.birthday?.forget(id);
      }
      for (const peer of this.dev.peers.values()) this.watched.add(peer);
    }
    for (const peer of this.dev.takeWoken()) this.watched.add(peer);
    const punchBacks = this.punchBacksDue > 0;
    for (const peer of this.watched) {
      if (this.dev.peers.get(peer.id) !== peer) {
        this.watched.delete(peer);
        continue;
      }
      const st = this.stateOf(peer);
      let waiting = false;
      if (punchBacks) {
        for (const c of st.candidates.values()) {
          if (now >= c.punchBackAtMs) {
            c.punchBackAtMs = Infinity;
            this.punchBacksDue--;
            if (!isDirectConfirmed(peer, now)) this.ping(peer, c.ep);
          } else if (c.punchBackAtMs !== Infinity) {
            waiting = true;
          }
        }
      }
      if (!this.isActive(peer, st, now)) {
        if (!waiting) this.watched.delete(peer);
        continue;
      }
      if (isDirectConfirmed(peer, now)) {
        if (now - st.lastPunchMs >= FULL_DISCOVERY_INTERVAL_MS) {
          st.lastHeartbeatMs = now;
          this.punch(peer, st, now); // pings the current endpoint too
        } else if (now - st.lastHeartbeatMs >= HEARTBEAT_INTERVAL_MS && peer.endpoint) {
          st.lastHeartbeatMs = now;
          this.ping(peer, peer.endpoint);
        }
        // After the heartbeat: a small ping queued after the largest probes could share their send.
        this.probePathMtu(peer, st, now);
      } else if (now - st.lastPunchMs >= PUNCH_INTERVAL_MS) {
        this.punch(peer, st, now);
        if (this.relayAvailable()) this.sendCallMeMaybe(peer, st, now);
      }
      // Without a relay and a direct path, nothing tells how a running attempt went (a relay that
      // dropped is not a path that appeared) and no new one can be agreed: probing waits.
      const direct = isDirectConfirmed(peer, now);
      if (direct || this.relayAvailable()) this.birthday?.step(peer, st.told, now, !direct);
    }
  }

  /** Whether the tick has work within the next second: watched peers, pings in flight, punch-backs. */
  busy(): boolean {
    return this.watched.size > 0 || this.pending.size > 0 || this.punchBacksDue > 0 || this.nextFullScanMs === -Infinity;
  }

  /** A relay said the peer is not connected to it: pings waiting on that relay will not be answered. */
  relayPeerGone(peerId: string): void {
    for (const [tx, p] of this.pending) {
      if (p.peerId === peerId && p.to === null) {
        this.pending.delete(tx);
        p.waiter?.(null);
      }
    }
  }

  /** A relay says the peer just logged in: exchange candidates and punch now, not at the next round. */
  peerArrived(peer: Peer): void {
    const st = this.stateOf(peer);
    const now = this.dev.clock.now();
    this.watched.add(peer);
    if (isDirectConfirmed(peer, now)) return;
    this.punch(peer, st, now);
    if (this.relayAvailable()) this.sendCallMeMaybe(peer, st, now);
  }

  /**
   * Turns birthday probing on (transport/birthday-probe.ts): peers learn that we take part from our
   * call-me-maybe, and the tick runs attempts towards relayed peers across one symmetric NAT.
   */
  enableBirthday(limits: BirthdayLimits): void {
    this.birthday = new BirthdayProber(
      {
        ping: (peer, to) => this.ping(peer, to),
        event: (e) => this.events.push(e),
        ownMappingVaries: () => this.ownNat(),
        ownPortsInOrder: () => this.ownPortsInOrder(),
        ownFresh: () => this.freshPort,
        ownKeyFirst: (peer) => keyId(this.dev.publicKey) < peer.id,
      },
      limits,
    );
  }

  /** Hard side: the daemon opened the extra sockets asked for by a 'birthday-open' event. */
  birthdaySocketsReady(peer: Peer, socks: readonly number[]): void {
    this.birthday?.socketsReady(peer, socks);
  }

  /**
   * Hard side (or both, when both NATs count up): a new socket of ours was just mapped to `port` of
   * our public address (a STUN answer from a fresh socket as an attempt starts). Tells the peer at
   * once, and in every call-me-maybe for FRESH_PORT_TTL_MS: behind a NAT that hands out ports in
   * order, the probing sockets' ports lie beside it, and the easy side probes there first; when both
   * sides are hard, each probes the ports after the other's (birthday.ts, pairedPorts).
   */
  announceFreshPort(peer: Peer, port: number): void {
    const now = this.dev.clock.now();
    this.freshPort = { port, atMs: now };
    const st = this.stateOf(peer);
    this.sendCallMeMaybe(peer, st, now);
    // Both hard: the peer's fresh port may be here already; the probes need not wait for a tick.
    if (this.relayAvailable() && !isDirectConfirmed(peer, now)) this.birthday?.step(peer, st.told, now, true);
  }

  /**
   * Both sides hard: a fresh socket of ours was just mapped to `port` (null: no answer), asked for by
   * a 'birthday-measure' event; the attempt's probes go now (BirthdayProber.measured).
   */
  birthdayMeasured(peer: Peer, port: number | null): void {
    this.birthday?.measured(peer, port, this.dev.clock.now());
  }

  /** Forgets keys and candidates (after our private key changed). */
  reset(): void {
    for (const id of this.state.keys()) this.birthday?.forget(id);
    this.state.clear();
    this.pending.clear();
    this.punchBacksDue = 0;
    this.nextFullScanMs = -Infinity;
  }

  /** Our candidates changed (a new STUN mapping): punch again now to peers without a direct path. */
  candidatesChanged(): void {
    for (const st of this.state.values()) st.lastPunchMs = -Infinity;
    this.nextFullScanMs = -Infinity; // and look at every peer on the next tick
  }

  /**
   * `meshd ping`: pings the peer via its relay and its endpoint at once; `waiter` gets each pong
   * (or null when a ping times out).
   */
  pingNow(peer: Peer, waiter: (r: PongResult | null) => void): number {
    let sent = 0;
    if (this.relayAvailable()) {
      this.ping(peer, null, waiter);
      sent++;
    }
    if (peer.endpoint) {
      this.ping(peer, peer.endpoint, waiter);
      sent++;
    }
    return sent;
  }

  candidatesOf(peer: Peer): { endpoint: string; source: string; rttMs: number | null }[] {
    return [...this.stateOf(peer).candidates.values()].map((c) => ({ endpoint: formatEndpoint(c.ep), source: c.source, rttMs: c.rttMs }));
  }

  lastRttMs(peer: Peer): number | null {
    return this.stateOf(peer).bestRttMs;
  }

  /** The direct path's MTU search, for status: null when off or no direct path was searched. */
  pathMtuOf(peer: Peer): { endpoint: string; mtu: number; found: number | null; searching: boolean; probesSent: number } | null {
    const s = this.state.get(peer.id)?.pmtu;
    return s ? { endpoint: s.endpoint, mtu: s.mtu(), found: s.found(), searching: s.searching(), probesSent: s.probesSent } : null;
  }

  /**
   * Runs the path MTU search of the peer's direct endpoint: sends the probes of a new round when
   * one is due and publishes the MTU in use as Peer.pathMtu.
   */
  private probePathMtu(peer: Peer, st: PeerDisco, now: number): void {
    if (!this.pathMtu || !peer.endpoint) return;
    const k = epKey(peer.endpoint);
    if (!st.pmtu || st.pmtu.endpoint !== k) st.pmtu = new PathMtuSearch(k, this.dev.mtu);
    for (const size of st.pmtu.due(now, st.bestRttMs, this.dev.mtu)) {
      for (let i = 0; i < PMTU_COPIES; i++) this.ping(peer, peer.endpoint, undefined, size);
      this.pathMtuProbesSent += PMTU_COPIES;
    }
    peer.pathMtu = st.pmtu.mtu();
    if (peer.mtu !== 0) peer.mtu = peer.pathMtu; // in use now where the direct path is (see the daemon's setPeerMtu)
  }

  private isActive(peer: Peer, st: PeerDisco, now: number): boolean {
    if (now - st.firstSeenMs < ACTIVE_WINDOW_MS || peer.staged.length > 0) return true;
    // Only data counts: keepalives and our own heartbeats' pongs must not keep an idle peer busy.
    return now - peer.lastDataMs < ACTIVE_WINDOW_MS;
  }

  private punch(peer: Peer, st: PeerDisco, now: number): void {
    st.lastPunchMs = now;
    if (peer.endpoint) this.addCandidate(st, peer.endpoint, 'endpoint');
    for (const c of st.candidates.values()) this.ping(peer, c.ep);
  }

  private sendCallMeMaybe(peer: Peer, st: PeerDisco, now: number): void {
    st.lastCallMeMaybeSentMs = now;
    const nat = this.ownNat();
    const fresh = this.freshPort && now - this.freshPort.atMs < FRESH_PORT_TTL_MS ? [this.freshPort.port] : undefined;
    this.send(peer, { type: 'call-me-maybe', candidates: this.ownCandidates(), nat: nat === null ? 'unknown' : nat ? 'varies' : 'independent', caps: this.birthday ? DISCO_CAP_BIRTHDAY | (this.ownPortsInOrder() ? DISCO_CAP_PORTS_IN_ORDER : 0) : 0, fresh }, null);
  }

  /** `probe`: a path MTU probe of that size (the datagram is as long as a data packet carrying it). */
  private ping(peer: Peer, to: Endpoint | null, waiter?: (r: PongResult | null) => void, probe?: number): void {
    const txid = new Uint8Array(randomBytes(DISCO_TXID_LEN));
    const now = this.dev.clock.now();
    this.pending.set(Buffer.from(txid).toString('hex'), { peerId: peer.id, to, sentMs: now, waiter, probe });
    if (to) {
      const c = this.stateOf(peer).candidates.get(epKey(to));
      if (c) c.lastPingMs = now;
    }
    const padTo = probe === undefined ? undefined : probe + TRANSPORT_DATA_OVERHEAD - DISCO_OVERHEAD;
    this.send(peer, { type: 'ping', txid, serial: this.roster?.serial(), padTo }, to);
  }

  private onPong(peer: Peer, st: PeerDisco, txid: Uint8Array, from: Endpoint, now: number): void {
    const tx = Buffer.from(txid).toString('hex');
    const p = this.pending.get(tx);
    if (!p || p.peerId !== peer.id) return this.drops.add('disco-unexpected-pong');
    this.pending.delete(tx);
    const rttMs = now - p.sentMs;
    if (from.relay) {
      peer.lastRelayRxMs = now;
      p.waiter?.({ via: null, relay: from.relay.url, rttMs });
      return;
    }
    if (!p.to || !endpointEqual(p.to, from)) {
      // A UDP pong from somewhere other than where the ping went: not proof of that path.
      p.waiter?.({ via: from, relay: null, rttMs });
      return;
    }
    if (p.probe !== undefined && st.pmtu && st.pmtu.endpoint === epKey(from)) {
      st.pmtu.arrived(p.probe);
      this.probePathMtu(peer, st, now); // the next round at once when this one is complete
    }
    const c = this.addCandidate(st, from, 'pong');
    c.lastPongMs = now;
    c.rttMs = rttMs;
    const wasConfirmed = isDirectConfirmed(peer, now);
    const same = endpointEqual(peer.endpoint, from);
    const better = !wasConfirmed || same || st.bestRttMs === null || rttMs < st.bestRttMs * BETTER_RTT_FACTOR;
    if (better) {
      if (!same) {
        this.dev.setEndpoint(peer, from);
        this.events.push({ type: 'direct-path', peerId: peer.id, endpoint: from, rttMs });
        this.birthday?.directPath(peer, from, st.told);
      } else if (!wasConfirmed) {
        this.events.push({ type: 'direct-path', peerId: peer.id, endpoint: from, rttMs });
      }
      st.bestRttMs = rttMs;
      peer.lastDirectRxMs = now;
    } else if (same) {
      peer.lastDirectRxMs = now;
    }
    p.waiter?.({ via: from, relay: null, rttMs });
  }

  private addCandidate(st: PeerDisco, ep: Endpoint, source: string): Candidate {
    const k = epKey(ep);
    let c = st.candidates.get(k);
    if (!c) {
      if (st.candidates.size >= MAX_CANDIDATES_PER_PEER) {
        const oldest = [...st.candidates.entries()].sort((a, b) => a[1].lastPongMs - b[1].lastPongMs)[0];
        st.candidates.delete(oldest[0]);
      }
      c = { ep: ep.sock === undefined ? { address: ep.address, port: ep.port } : { address: ep.address, port: ep.port, sock: ep.sock }, source, punchBackAtMs: Infinity, lastPingMs: -Infinity, lastPongMs: -Infinity, rttMs: null };
      st.candidates.set(k, c);
    }
    return c;
  }

  private send(peer: Peer, m: DiscoMessage, to: Endpoint | null): void {
    const st = this.stateOf(peer);
    if (!st.key) return;
    const nonce = new Uint8Array(randomBytes(24));
    const own = this.dev.publicKey;
    const sealed = sealDisco(st.key, nonce, encodeDiscoMessage(m), own);
    this.sent[m.type]++;
    this.out.push({ to, peerId: peer.id, data: encodeDiscoEnvelope(own, nonce, sealed) });
  }

  private stateOf(peer: Peer): PeerDisco {
    let st = this.state.get(peer.id);
    if (!st) {
      st = {
        key: discoKey(this.dev.identity.privateKey, peer.publicKey),
        firstSeenMs: this.dev.clock.now(),
        candidates: new Map(),
        lastPunchMs: -Infinity,
        lastCallMeMaybeSentMs: -Infinity,
        lastHeartbeatMs: -Infinity,
        bestRttMs: null,
        pmtu: null,
        told: { nat: null, candidates: [], fresh: [] },
      };
      this.state.set(peer.id, st);
    }
    return st;
  }
}
