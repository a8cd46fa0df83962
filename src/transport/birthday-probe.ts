// Birthday probing towards relayed peers across one symmetric NAT (transport/birthday.ts has the
// plan and the figures). Sans-IO, driven by discovery's tick: it decides when an attempt runs and
// what each side sends; discovery seals the pings; the daemon opens and closes the hard side's
// extra sockets when told to (DiscoEvent 'birthday-open' / 'birthday-keep' / 'birthday-close').
//  - easy side: pings from its data socket to `probes` distinct ports of the hard side's public
//    IPv4 address, nearest the ports it announced first (probePorts), or the fresh port it tells
//    us once its attempt runs (recentre), spread over the window.
//  - hard side: `sockets` extra sockets, each pinging the easy side's public endpoint once at once
//    (its NAT maps each to a new random port, open towards exactly that endpoint).
//  - both sides hard behind NATs that count their ports up (sweep / stagger): as an attempt starts
//    each takes a fresh port and tells the other; once it has both, it takes one more fresh port
//    (not told: how far its own counter moved meanwhile) and pings the ports after the other's fresh
//    one from its data socket, all at once (pairedPorts). A fresh port from the peer starts our
//    attempt too, back-off or not, so that the two sides' attempts run together.
// A pong is a direct path as any other (discovery makes it the peer's endpoint; on the hard side that
// endpoint names the socket); the hard side keeps that socket and closes the rest at once.
import { randomInt } from 'node:crypto';
import { endpointEqual, type Endpoint } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import { BirthdayPlan, birthdayRole, isPairedRole, pairedPorts, portDistance, probePorts, type BirthdayLimits, type BirthdayRole, type NatInfo } from './birthday.js';

export type BirthdayEvent =
  | { type: 'birthday-open'; peerId: string; count: number; target: { address: string; port: number } }
  | { type: 'birthday-keep'; peerId: string; socks: number[] }
  | { type: 'birthday-close'; peerId: string }
  /** Both sides hard: take a fresh port and tell the peer (Discovery.announceFreshPort). */
  | { type: 'birthday-fresh'; peerId: string }
  /** Both sides hard: take one more fresh port, not told, and hand it back (BirthdayProber.measured). */
  | { type: 'birthday-measure'; peerId: string };

export interface BirthdayHost {
  /** Sends a sealed disco ping to `to` (from the extra socket `to.sock` when set). */
  ping(peer: Peer, to: Endpoint): void;
  event(e: BirthdayEvent): void;
  /** Our own NAT kind, from STUN against two servers. */
  ownMappingVaries(): boolean | null;
  /** Whether our NAT hands out ports in order (OwnEndpoints.portsInOrder); absent: no. */
  ownPortsInOrder?(): boolean;
  /** Our latest fresh port and when it was mapped (Discovery.announceFreshPort); absent: none. */
  ownFresh?(): { port: number; atMs: number } | null;
  /** Whether our key sorts before the peer's (both hard: the first one sweeps); absent: no. */
  ownKeyFirst?(peer: Peer): boolean;
}

/** What the peer told us in its latest call-me-maybe. */
export interface PeerAnnouncement {
  nat: NatInfo | null;
  candidates: readonly Endpoint[];
  /** Ports at its public IPv4 address a new socket of its was mapped to just now (hard side). */
  fresh: readonly number[];
  /** When those ports first came (a call-me-maybe that carried other ports, or none, before); absent: never. */
  freshAtMs?: number;
}

export interface BirthdayPeerStatus {
  role: BirthdayRole | null;
  /** Why no attempt runs (null while one runs or after a meeting). */
  why: string | null;
  state: 'idle' | 'probing' | 'met' | 'backing-off';
  attempts: number;
  /** Probe datagrams this side sent towards the peer (pings from the data socket, or from the extra sockets). */
  probesSent: number;
  /** The extra sockets open now (hard side). */
  sockets: number;
}

interface PeerProbe {
  plan: BirthdayPlan | null;
  running: boolean;
  /** Easy side: the attempt's ports, in sending order, and how many went; the ports they centre on. */
  ports: number[];
  sent: number;
  centres: number[];
  /** Easy side: the hard side's public IPv4 address; hard side: the easy side's public endpoint. */
  target: Endpoint | null;
  /**
   * Hard side: the running attempt's sockets; those of them the peer's probes reached (the peer may
   * settle on any of them: two probes can meet at once); and the ones kept from a meeting.
   */
  socks: number[];
  heard: Set<number>;
  kept: number[];
  metAtMs: number;
  /** Easy side: the ports probed in the latest attempt. */
  probed: Set<number>;
  /** The endpoint that met (easy: the hard side's port; hard: the easy side, from the kept socket). */
  met: Endpoint | null;
  why: string | null;
  /** Since when the peer has been relayed without a break (-Infinity: it is not), and the last step. */
  relayedSinceMs: number;
  lastStepMs: number;
  /** Both sides hard: when the running attempt started, and the peer's fresh ports taken up (by freshAtMs). */
  startMs: number;
  answeredFreshAtMs: number;
  /** Both sides hard: the probes wait for our counter's measure (birthday-measure): our fresh port and the peer's. */
  measuring: { own: number; theirs: number } | null;
}

/**
 * After a meeting, a peer that wakes from idle is relayed for a moment until the path found earlier
 * answers again: a new attempt waits this long for that.
 */
export const REVIVE_GRACE_MS = 3000;
/** After a meeting that kept several sockets, the ones the peer does not use close this much later. */
export const PRUNE_AFTER_MS = 10_000;
/**
 * Both sides hard: a peer's fresh port that came this long before our attempt started is still its
 * attempt's (the peer's start may have started ours), and one that came this recently starts ours.
 */
export const PAIRED_FRESH_SLACK_MS = 2000;
/** The largest move of our NAT's counter between two fresh ports that is taken as measured. */
export const MAX_MEASURED_SHIFT = 4096;

const PRIVATE_V4 = [/^10\./, /^192\.168\./, /^172\.(1[6-9]|2\d|3[01])\./, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./, /^127\./, /^169\.254\./];

/** Whether `ep` is one of the endpoints the peer announced (a port at its public address). */
function announcedAt(told: PeerAnnouncement, ep: Endpoint): boolean {
  return told.candidates.some((c) => c.address === ep.address && c.port === ep.port);
}

/** The first candidate with a public IPv4 address: the STUN-mapped one (probing is an IPv4 matter). */
export function publicV4(candidates: readonly Endpoint[]): Endpoint | null {
  return candidates.find((c) => /^\d+\.\d+\.\d+\.\d+$/.test(c.address) && !PRIVATE_V4.some((r) => r.test(c.address))) ?? null;
}

export class BirthdayProber {
  readonly counters = { attempts: 0, successes: 0, probesSent: 0, socketsOpened: 0 };
  private readonly peers = new Map<string, PeerProbe>();
  /** Our NAT kind as last known: a STUN round that did not finish (unknown) does not stop an attempt. */
  private ownVaries: boolean | null = null;
  /** The time of the latest step (directPath has no clock of its own). */
  private lastNowMs = 0;

  constructor(
    private readonly host: BirthdayHost,
    readonly limits: BirthdayLimits,
  ) {}

  private probeOf(peer: Peer): PeerProbe {
    let p = this.peers.get(peer.id);
    if (!p) {
      p = { plan: null, running: false, ports: [], sent: 0, centres: [], target: null, socks: [], heard: new Set(), kept: [], metAtMs: -Infinity, probed: new Set(), met: null, why: null, relayedSinceMs: -Infinity, lastStepMs: -Infinity, startMs: -Infinity, answeredFreshAtMs: -Infinity, measuring: null };
      this.peers.set(peer.id, p);
    }
    return p;
  }

  /**
   * One tick for a peer discovery considers active. `relayed`: it has no confirmed direct path and a
   * relay carries it (probing is for exactly that case).
   */
  step(peer: Peer, told: PeerAnnouncement, nowMs: number, relayed: boolean): void {
    this.lastNowMs = nowMs;
    const p = this.probeOf(peer);
    // Steps come every tick while the peer is active: a gap means it was idle, and "relayed" starts over.
    if (!relayed || nowMs - p.lastStepMs > 2000) p.relayedSinceMs = -Infinity;
    if (relayed && p.relayedSinceMs === -Infinity) p.relayedSinceMs = nowMs;
    p.lastStepMs = nowMs;
    const r = this.roleTowards(peer, told);
    if (r.role === null) {
      p.why = r.why;
      if (p.running) this.stop(peer, p, nowMs, false);
      return;
    }
    if (!p.plan || p.plan.role !== r.role) p.plan = new BirthdayPlan(r.role, this.limits);
    const plan = p.plan;
    if (p.running) {
      if (!relayed) {
        // Easy side: the hard side's socket met us first. Its pong came on one of its sockets, it
        // sent its data straight from there, and our device roamed to that mapping (WireGuard's
        // endpoint roaming) before any pong to our probes: the meeting is this attempt's. That holds
        // for any port of its NAT's address, the ones it announced too: those map towards the STUN
        // servers, not towards us, and one of its sockets drew the same port (about one attempt in
        // 120 over a full port range; nearly every attempt behind a NAT that hands out a small block).
        // Both hard: the same, from a port of the peer's address we probed (its data came first).
        const ep = peer.endpoint;
        if (plan.role === 'easy' && ep && this.atHardSide(p, ep)) return this.meet(peer, p, ep);
        if (isPairedRole(plan.role) && ep && this.atHardSide(p, ep) && p.probed.has(ep.port)) return this.meet(peer, p, ep);
        // Hard side: one of our probe sockets answered an easy-side probe, the easy side met and sent
        // its data there, and our device roamed to that socket before the pong to our own ping came
        // (or our ping never passed the easy side's NAT): the meeting is this attempt's, and that
        // socket must stay — closing it with the rest would drop the path the peer now sends on.
        if (plan.role === 'hard' && ep?.sock !== undefined && p.socks.includes(ep.sock)) return this.meet(peer, p, ep);
        // Hard side: an easy-side probe drew our data socket's own mapping towards it (one more open
        // port among the sockets'; ~1 meeting in 257): the path is on the data socket.
        if (plan.role === 'hard' && this.mainToTarget(p, ep)) return this.meet(peer, p, ep!);
        return this.stop(peer, p, nowMs, true); // a direct path appeared (another)
      }
      if (!plan.active(nowMs)) return this.stop(peer, p, nowMs, false);
      if (plan.role === 'easy') {
        this.recentre(p, told);
        this.sendProbes(peer, p, plan.take(nowMs));
      } else if (isPairedRole(plan.role)) this.sendPaired(peer, p, told);
      return;
    }
    if (!relayed) {
      // Two sockets met at once: once the peer has settled on one (our endpoint is where its data
      // comes from), the other closes.
      // The same when it settled on our data socket: an easy-side probe drew its mapping in the same
      // batch as a socket's, and the peer's data goes there (WireGuard roamed our endpoint to it).
      const settled = peer.endpoint?.sock;
      if (p.kept.length > 1 && settled !== undefined && p.kept.includes(settled) && nowMs - p.metAtMs > PRUNE_AFTER_MS) {
        p.kept = [settled];
        this.host.event({ type: 'birthday-keep', peerId: peer.id, socks: p.kept });
      } else if (plan.role === 'hard' && p.kept.length > 0 && this.mainToTarget(p, peer.endpoint) && nowMs - p.metAtMs > PRUNE_AFTER_MS) {
        this.toDataSocket(peer, p, peer.endpoint!);
      }
      return;
    }
    if (p.met && nowMs - p.relayedSinceMs < REVIVE_GRACE_MS) {
      p.why = 'waiting for the path found earlier to answer';
      return;
    }
    const target = publicV4(told.candidates);
    if (!target) {
      p.why = 'the peer announced no public IPv4 address';
      return;
    }
    // Both hard: the peer's attempt started (it told us a fresh port we have not answered): ours
    // starts with it, back-off or not, or the two would run apart.
    const peerStarted = isPairedRole(plan.role) && told.fresh.length > 0 && (told.freshAtMs ?? -Infinity) > p.answeredFreshAtMs && nowMs - (told.freshAtMs ?? -Infinity) < PAIRED_FRESH_SLACK_MS;
    if (!plan.start(nowMs, peerStarted)) {
      p.why = null;
      return;
    }
    // A socket kept from an earlier meeting stays: after idle its path may answer again, and then the
    // attempt stops (stop(direct)); if it does not, the attempt's end closes it.
    p.running = true;
    p.why = null;
    p.socks = [];
    p.heard.clear();
    p.probed.clear();
    p.target = target;
    p.startMs = nowMs;
    this.counters.attempts++;
    if (isPairedRole(plan.role)) {
      p.ports = [];
      p.sent = 0;
      p.measuring = null;
      if (told.fresh.length > 0) p.answeredFreshAtMs = told.freshAtMs ?? -Infinity;
      this.host.event({ type: 'birthday-fresh', peerId: peer.id });
      this.sendPaired(peer, p, told);
    } else if (plan.role === 'easy') {
      // Nearest the ports the peer announced at that address first (both STUN mappings), or the
      // fresh port it told us (recentre).
      const announced = told.candidates.filter((c) => c.address === target.address).map((c) => c.port);
      p.centres = told.fresh.length > 0 ? [...told.fresh] : announced;
      p.ports = probePorts(this.limits.probes, p.centres, randomInt);
      p.sent = 0;
      this.sendProbes(peer, p, plan.take(nowMs));
    } else {
      const count = plan.take(nowMs);
      this.counters.socketsOpened += count;
      this.host.event({ type: 'birthday-open', peerId: peer.id, count, target: { address: target.address, port: target.port } });
    }
  }

  /** Hard side: the daemon opened the extra sockets for the running attempt; each pings the easy side now. */
  socketsReady(peer: Peer, socks: readonly number[]): void {
    const p = this.peers.get(peer.id);
    if (!p || !p.running || !p.target || p.plan?.role !== 'hard') {
      this.host.event({ type: 'birthday-close', peerId: peer.id });
      return;
    }
    p.socks.push(...socks);
    for (const sock of socks) {
      this.host.ping(peer, { address: p.target.address, port: p.target.port, sock });
      this.counters.probesSent++;
    }
  }

  /**
   * Discovery made `from` the peer's direct path (a pong from where a ping went). If it is one of
   * this attempt's, it met: the easy side stops probing, the hard side keeps that socket only.
   * `told`: the peer's latest call-me-maybe (its NAT kind and the ports it announced).
   */
  directPath(peer: Peer, from: Endpoint, told: PeerAnnouncement): void {
    const p = this.peers.get(peer.id) ?? (told.nat ? this.probeOf(peer) : null);
    if (!p) return;
    if (!p.target) this.awaitHardSide(peer, p, told);
    if (!p.target) return;
    // Ours: from one of the hard side's sockets, or (easy side) from its NAT's address while the
    // attempt runs (see step), from a port we probed, or from a port it announced: behind its
    // symmetric NAT those map towards the STUN servers, not towards us, so what answers there is one
    // of its sockets that drew the same port, whether or not our own attempt has started yet.
    const easy = p.plan?.role !== 'hard';
    // Both hard: only a port we probed (the ports it announced map towards the STUN servers).
    const ours = isPairedRole(p.plan?.role ?? null)
      ? this.atHardSide(p, from) && p.probed.has(from.port)
      : easy
        ? this.atHardSide(p, from) && (p.running || p.probed.has(from.port) || announcedAt(told, from))
        : from.sock !== undefined
          ? p.socks.includes(from.sock) || p.kept.includes(from.sock)
          : (p.running || p.kept.length > 0) && this.mainToTarget(p, from);
    if (!ours) return;
    // The easy side's last probes may be answered after its window closed (the attempt counted as a
    // miss): still its meeting, or status would call the path a plain one. Not the path it met on
    // before coming back after idle (no second meeting). The hard side's sockets close with its attempt.
    const metHere = endpointEqual(p.met, from);
    if (p.running || (easy && !metHere)) this.meet(peer, p, from);
    else if (!easy && from.sock === undefined) this.toDataSocket(peer, p, from);
  }

  /**
   * Hard side: the easy side's probes met one of our sockets and, in the same batch, our data
   * socket's own mapping towards it; the data socket's path won (on its RTT, after the attempt had
   * ended on the socket's, or the peer's data went there). The path is still the attempt's: it stays
   * "via birthday probing", and the kept sockets close, as after a meeting on the data socket.
   */
  private toDataSocket(peer: Peer, p: PeerProbe, from: Endpoint): void {
    p.met = from;
    p.kept = [];
    this.host.event({ type: 'birthday-close', peerId: peer.id });
  }

  /** Our part towards a peer that told us `told`, from our NAT kind as STUN sees it now. */
  private roleTowards(peer: Peer, told: PeerAnnouncement): ReturnType<typeof birthdayRole> {
    this.ownVaries = this.host.ownMappingVaries() ?? this.ownVaries;
    if (!told.nat) return { role: null, why: 'the peer has not said what NAT it is behind' };
    const own: NatInfo = { mappingVaries: this.ownVaries, birthday: true, inOrder: this.host.ownPortsInOrder?.() ?? false };
    return birthdayRole(own, told.nat, this.host.ownKeyFirst?.(peer) ?? false);
  }

  /**
   * Both hard, while the attempt runs: once our fresh port (taken as it started) and the peer's
   * (from its attempt, this one's or one that came just before it) are both known, we measure how
   * far our own NAT's counter moved since ours (birthday-measure; the side that waited for the other
   * may have seen many other flows meanwhile), and then every probe goes at once (measured).
   */
  private sendPaired(peer: Peer, p: PeerProbe, told: PeerAnnouncement): void {
    if (p.ports.length > 0 || p.measuring) return;
    const own = this.host.ownFresh?.() ?? null;
    const theirsAt = told.freshAtMs ?? -Infinity;
    if (!own || own.atMs < p.startMs || told.fresh.length === 0 || theirsAt < p.startMs - PAIRED_FRESH_SLACK_MS) return;
    p.answeredFreshAtMs = theirsAt;
    p.measuring = { own: own.port, theirs: told.fresh[0] };
    this.host.event({ type: 'birthday-measure', peerId: peer.id });
  }

  /**
   * Both hard: the port a fresh socket of ours was just mapped to (null: no answer), after our fresh
   * port and the peer's were known. Our probes are shifted by how far our counter moved since the
   * fresh port the peer aims at (pairedPorts), and go at once.
   */
  measured(peer: Peer, port: number | null, nowMs: number): void {
    const p = this.peers.get(peer.id);
    const role = p?.plan?.role ?? null;
    if (!p || !p.running || !p.measuring || p.ports.length > 0 || !isPairedRole(role)) return;
    const { own, theirs } = p.measuring;
    const moved = port === null ? 0 : portDistance(own, port);
    // A counter that moved more than a few thousand ports is not one we measured (a NAT that
    // restarted, or picks at random after all): no shift.
    const shift = moved <= MAX_MEASURED_SHIFT ? moved : 0;
    p.measuring = null;
    p.ports = pairedPorts(role, theirs, shift);
    p.sent = 0;
    this.sendProbes(peer, p, p.plan!.take(nowMs));
  }

  /**
   * Easy side before its first attempt: the plan and the hard side's address, so that a direct path
   * its sockets make to us before our attempt starts is still a meeting (directPath).
   */
  private awaitHardSide(peer: Peer, p: PeerProbe, told: PeerAnnouncement): void {
    if (this.roleTowards(peer, told).role !== 'easy') return;
    p.plan ??= new BirthdayPlan('easy', this.limits);
    if (p.plan.role === 'easy') p.target = publicV4(told.candidates);
  }

  /** Hard side: the easy side's public endpoint, reached from our data socket (not a probing one). */
  private mainToTarget(p: PeerProbe, ep: Endpoint | null): boolean {
    return ep !== null && ep.sock === undefined && p.target !== null && ep.address === p.target.address && ep.port === p.target.port;
  }

  /** A port of the hard side's NAT address (not one of our own sockets): a mapping made towards us. */
  private atHardSide(p: PeerProbe, ep: Endpoint): boolean {
    return ep.sock === undefined && ep.address === p.target?.address;
  }

  /** The attempt met at `from`: the easy side stops probing, the hard side keeps that socket only. */
  private meet(peer: Peer, p: PeerProbe, from: Endpoint): void {
    p.running = false;
    p.met = from;
    p.metAtMs = this.lastNowMs;
    p.relayedSinceMs = -Infinity;
    p.plan!.succeeded();
    this.counters.successes++;
    if (p.plan!.role === 'hard') {
      // Met on the data socket: every probing socket closes. Otherwise the one that met stays, with
      // those the peer reached too (until it settles on one).
      p.kept = from.sock === undefined ? [] : [...new Set([from.sock, ...p.kept, ...[...p.heard].filter((s) => p.socks.includes(s))])];
      p.socks = [];
      p.heard.clear();
      this.host.event(p.kept.length > 0 ? { type: 'birthday-keep', peerId: peer.id, socks: p.kept } : { type: 'birthday-close', peerId: peer.id });
    }
  }

  /** Hard side: a datagram from the peer arrived on extra socket `sock`. */
  heardOn(peer: Peer, sock: number): void {
    const p = this.peers.get(peer.id);
    if (p?.running && p.socks.includes(sock)) p.heard.add(sock);
  }

  /** Whether `ep` is a path an attempt found for this peer (status: "direct via birthday probing"). */
  found(peer: Peer, ep: Endpoint | null): boolean {
    const p = this.peers.get(peer.id);
    if (!p?.met || !ep) return false;
    if (p.plan?.role === 'hard') {
      if (ep.sock !== undefined) return p.kept.includes(ep.sock);
      // Our data socket: the path met there, or the peer settled there while sockets that met are
      // kept (an easy-side probe drew the data socket's mapping too: see step).
      return (p.met.sock === undefined && endpointEqual(p.met, ep)) || (p.kept.length > 0 && this.mainToTarget(p, ep));
    }
    return this.atHardSide(p, ep) && (p.probed.has(ep.port) || endpointEqual(p.met, ep));
  }

  statusOf(peer: Peer): BirthdayPeerStatus {
    const p = this.peers.get(peer.id);
    if (!p) return { role: null, why: 'no attempt yet', state: 'idle', attempts: 0, probesSent: 0, sockets: 0 };
    const state = p.running ? 'probing' : p.met ? 'met' : p.plan && p.plan.attempts > 0 ? 'backing-off' : 'idle';
    return { role: p.plan?.role ?? null, why: p.why, state, attempts: p.plan?.attempts ?? 0, probesSent: p.plan?.probesSent ?? 0, sockets: p.socks.length + p.kept.length };
  }

  /** The peer is gone (or our key changed): its sockets close. */
  forget(peerId: string): void {
    const p = this.peers.get(peerId);
    if (p && (p.socks.length > 0 || p.kept.length > 0)) this.host.event({ type: 'birthday-close', peerId });
    this.peers.delete(peerId);
  }

  /**
   * Easy side, while probing: the hard side told us a fresh port (a new socket's mapping, taken as
   * its attempt started). Behind a NAT that hands out ports in order, its probing sockets' ports lie
   * just beside that one, however far the announced STUN ports are by now: the probes not sent yet
   * go nearest it first. Behind one that picks at random, near it is as good as anywhere.
   */
  private recentre(p: PeerProbe, told: PeerAnnouncement): void {
    if (told.fresh.length === 0 || told.fresh.every((port) => p.centres.includes(port))) return;
    p.centres = [...told.fresh];
    const left = p.ports.length - p.sent;
    const next = probePorts(this.limits.probes, p.centres, randomInt).filter((port) => !p.probed.has(port));
    p.ports = [...p.ports.slice(0, p.sent), ...next.slice(0, left)];
  }

  private sendProbes(peer: Peer, p: PeerProbe, n: number): void {
    const target = p.target!;
    for (let i = 0; i < n && p.sent < p.ports.length; i++) {
      const port = p.ports[p.sent++];
      p.probed.add(port);
      this.host.ping(peer, { address: target.address, port });
      this.counters.probesSent++;
    }
  }

  /**
   * The attempt ends without a meeting of its own: a direct path appeared (`direct`: the kept
   * socket's path answering again, or a plain hole punch), or the window passed.
   */
  private stop(peer: Peer, p: PeerProbe, nowMs: number, direct: boolean): void {
    p.running = false;
    if (direct) p.plan?.succeeded();
    else p.plan?.failed(nowMs);
    if (p.plan?.role !== 'hard') return;
    p.socks = [];
    p.heard.clear();
    const settled = peer.endpoint?.sock;
    if (direct && settled !== undefined && p.kept.includes(settled)) {
      this.host.event({ type: 'birthday-keep', peerId: peer.id, socks: p.kept });
      return;
    }
    p.kept = [];
    if (p.met?.sock !== undefined) p.met = null;
    this.host.event({ type: 'birthday-close', peerId: peer.id });
  }
}
