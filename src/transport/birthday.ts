// Birthday-paradox port probing through one symmetric NAT (issue: direct paths through symmetric
// NATs), the pure part: who does what, how many probes, when, and within which budget
// (birthday-probe.ts runs the attempts; docs/birthday.md).
//
// A host behind an endpoint-dependent ("hard", symmetric) NAT gets a new public port for every
// destination, so the port its peer learned via STUN is useless to the peer. But the hard side can
// open many mappings towards the easy side's one stable address (one extra socket each, each sending
// a disco ping there), and the easy side can send disco pings from its data socket to many ports of
// the hard side's public address (nearest the ones it announced first: probePorts): a probe that
// lands on one of the hard side's open ports passes its NAT (the mapping was made towards exactly
// the easy side's address), the socket behind it answers, and that is a direct path. With m mappings among R possible ports and p distinct probes, the chance
// of at least one meeting is 1 − C(R−m, p) / C(R, p) ≈ 1 − (1 − m/R)^p: 256 × 256 ≈ 64 %, 256 × 1,000
// ≈ 98 % over Linux's 64,512 ports (1024–65535) when the NAT picks at random from all of them; far
// better when it hands the host a block of ports. Both hard behind NATs that pick ports at random:
// 65k probes a side, never attempted. Both hard behind NATs that hand out ports in order (counting
// up): each side's next mappings are predictable from a fresh port, and a few hundred probes a side
// meet (pairedPorts).

/** What a peer said about itself in its call-me-maybe (wire/disco.ts). */
export interface NatInfo {
  /** From STUN against two servers: null unknown, true hard (endpoint-dependent mapping). */
  mappingVaries: boolean | null;
  /** Whether it can take part in birthday probing (a disco capability). */
  birthday: boolean;
  /**
   * Whether its NAT hands out public ports in order (its two STUN mappings a few ports apart: see
   * OwnEndpoints.portsInOrder); absent from older senders (false).
   */
  inOrder?: boolean;
}

/** The port range a NAT picks from when it randomises (Linux's masquerade: 1024–65535). */
export const PORT_RANGE_LOW = 1024;
export const PORT_RANGE_HIGH = 65535;
export const PORT_RANGE = PORT_RANGE_HIGH - PORT_RANGE_LOW + 1;

export interface BirthdayLimits {
  /** Extra sockets the hard side opens per attempt. */
  sockets: number;
  /** Probes the easy side sends per attempt, spread over `windowMs`. */
  probes: number;
  windowMs: number;
  /** Probe datagrams (both roles) allowed per hour; an attempt that would pass it does not start. */
  hourlyBudget: number;
  /**
   * Wait after a first failed attempt. With the default figures an attempt misses by bad luck alone
   * 1.8 % of the time, so one quick retry takes a pair to 99.97 % within seconds instead of leaving
   * it on the relay for backoffMs; a second miss looks like something in the way, and backs off.
   */
  firstRetryMs: number;
  /** Wait after the second failed attempt in a row; doubled after each further failure, up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_BIRTHDAY_LIMITS: BirthdayLimits = {
  sockets: 256,
  probes: 1000,
  windowMs: 5000,
  hourlyBudget: 10_000,
  firstRetryMs: 2000,
  backoffMs: 30_000,
  maxBackoffMs: 30 * 60_000,
};

/** Bounds any configuration must stay within (the sockets are file descriptors; the probes traffic). */
export const MAX_BIRTHDAY_SOCKETS = 1024;
export const MAX_BIRTHDAY_PROBES = 4096;

/**
 * 'hard' and 'easy': one symmetric NAT (the hard side opens sockets, the easy side probes ports).
 * 'sweep' and 'stagger': both sides behind symmetric NATs that count their ports up; each probes
 * from its data socket, the sweeping side every port after the peer's fresh one, the staggering side
 * those ports shifted by a growing offset (pairedPorts). Which is which: the lower key sweeps.
 */
export type BirthdayRole = 'hard' | 'easy' | 'sweep' | 'stagger';
/** Both sides probe, each from its data socket towards ports after the other's fresh port. */
export function isPairedRole(role: BirthdayRole | null): role is 'sweep' | 'stagger' {
  return role === 'sweep' || role === 'stagger';
}

/**
 * The offsets the staggering side tries, 0 … PAIRED_CYCLE − 1, one per probe in turn: the drift of
 * both NATs' counters together (other flows' mappings between a fresh port and the probes, less
 * what each side measured) that it can make up for. Odd, so that no two of its probes go to the same
 * port.
 */
export const PAIRED_CYCLE = 127;
/**
 * Probes of each side: three turns of the cycle. The side whose attempt started first waited a relay
 * round trip for the other's fresh port before it measured and sent; the other side sent at once,
 * aimed at ports past that first side's fresh one, some of which other flows took meanwhile. Those
 * of its probes are lost, and two turns are left for up to 2 × PAIRED_CYCLE ports taken so.
 */
export const STAGGER_PROBES = 3 * PAIRED_CYCLE;
export const SWEEP_PROBES = 3 * PAIRED_CYCLE;
/** The end of an attempt's window in which the easy side sends no more probes (their pongs may still come). */
export const PROBE_TAIL_MS = 1000;

/**
 * Our part in probing towards a peer, or why none: one side hard, both known, both capable; or both
 * hard behind NATs that count their ports up (`ownKeyFirst`: our key sorts before the peer's, and we
 * sweep). Two hard sides behind NATs that pick at random would need ~65k probes each: they stay on
 * the relay.
 */
export function birthdayRole(own: NatInfo, peer: NatInfo, ownKeyFirst = false): { role: BirthdayRole } | { role: null; why: string } {
  if (!own.birthday || !peer.birthday) return { role: null, why: own.birthday ? 'the peer cannot probe (older meshd)' : 'probing is off here' };
  if (own.mappingVaries === null || peer.mappingVaries === null) return { role: null, why: 'NAT kind not known on both sides (needs two STUN servers)' };
  if (own.mappingVaries && peer.mappingVaries) {
    if (own.inOrder && peer.inOrder) return { role: ownKeyFirst ? 'sweep' : 'stagger' };
    const which = own.inOrder ? "the peer's does not hand out ports in order (or its meshd does not say)" : 'ours does not hand out ports in order';
    return { role: null, why: `both sides behind symmetric NATs and ${which}: probing would take ~65k probes a side` };
  }
  if (!own.mappingVaries && !peer.mappingVaries) return { role: null, why: 'neither side behind a symmetric NAT' };
  return { role: own.mappingVaries ? 'hard' : 'easy' };
}

/**
 * Both sides behind NATs that count up: the ports of the peer's public address to probe, in sending
 * order, from its fresh port `fresh` (a new socket's mapping, taken as its attempt started), shifted
 * by `shift`: how far our own NAT's counter moved since our fresh port (measured with one more fresh
 * socket just before the probes go; 0 unknown).
 *
 * Each probe goes to a new destination, so each takes the next port of our own NAT. Say other flows
 * took dS ports of the sweeping side's NAT since its fresh port s, and dT of the staggering side's
 * since its fresh port t. The sweeping side's probe j leaves from s + 1 + j + dS towards
 * t + 1 + j + σ; the staggering side's probe k leaves from t + 1 + k + dT towards
 * s + 1 + k + τ + (k mod PAIRED_CYCLE) (σ and τ their shifts). Probe k and probe j = k + dT − σ are
 * made for each other (each leaves from the port the other aims at) when
 * k mod PAIRED_CYCLE = (dS − σ) + (dT − τ): whichever arrives second passes the other's NAT, whose
 * mapping the first opened. With the shifts measured, what is left is the drift while each side
 * measured, however long it waited for the other's fresh port; so any steady drift left below
 * PAIRED_CYCLE meets within one turn of the cycle, as long as j falls among the sweep's probes (it
 * has a turn more than the stagger for that). One that grows while the probes go (other flows keep
 * taking ports) is caught up with too, since the offset grows by one each probe and the drift by
 * less, as long as that happens before the offset turns over; the stagger's second turn is for a
 * drift that jumped past the offset.
 */
export function pairedPorts(role: 'sweep' | 'stagger', fresh: number, shift = 0): number[] {
  const out: number[] = [];
  const n = role === 'sweep' ? SWEEP_PROBES : STAGGER_PROBES;
  for (let k = 0; k < n; k++) out.push(wrapPort(fresh + 1 + k + shift + (role === 'stagger' ? k % PAIRED_CYCLE : 0)));
  return out;
}

/** How far a NAT's counter moved from `from` to `to` (both ports it handed out, in that order). */
export function portDistance(from: number, to: number): number {
  return (((to - from) % PORT_RANGE) + PORT_RANGE) % PORT_RANGE;
}

/** A port counted past the top of the NAT's range goes on from its bottom (as the lab's NAT and Linux's do). */
function wrapPort(n: number): number {
  return PORT_RANGE_LOW + ((((n - PORT_RANGE_LOW) % PORT_RANGE) + PORT_RANGE) % PORT_RANGE);
}

/** The chance that `probes` distinct random ports hit at least one of `mappings` open ones among `range`. */
export function meetProbability(mappings: number, probes: number, range = PORT_RANGE): number {
  if (mappings <= 0 || probes <= 0) return 0;
  if (mappings + probes > range) return 1;
  // 1 − Π_{i<p} (R − m − i) / (R − i), in logs for large p.
  let logMiss = 0;
  for (let i = 0; i < probes; i++) logMiss += Math.log((range - mappings - i) / (range - i));
  return 1 - Math.exp(logMiss);
}

/**
 * The easy side's probe ports for one attempt: `count` distinct ports of the NAT's range, nearest
 * the ports the hard side announced first (`announced`: its STUN mappings at the address probed;
 * distance 1 from each, then 2, …; each announced port itself is never probed: plain punches ping
 * those). Against a NAT that picks every port at random from the whole range, any distinct ports
 * meet with the same chance (meetProbability); against one that hands a host a block of ports (as
 * carrier-grade NATs do) or counts its ports up one by one, the hard side's mappings lie beside the
 * announced ones and the first probes find them. With nothing announced in the range: `count`
 * distinct random ports (a partial Fisher–Yates over the range, lazily). `random` returns integers
 * in [0, n).
 */
export function probePorts(count: number, announced: readonly number[], random: (n: number) => number): number[] {
  const centres = [...new Set(announced.filter(inPortRange))];
  if (centres.length === 0) return randomPorts(count, random);
  const taken = new Set(centres);
  const out: number[] = [];
  const want = Math.min(count, PORT_RANGE - centres.length);
  for (let d = 1; out.length < want; d++) {
    for (const c of centres) {
      for (const port of [c + d, c - d]) {
        if (out.length >= want || !inPortRange(port) || taken.has(port)) continue;
        taken.add(port);
        out.push(port);
      }
    }
  }
  return out;
}

function inPortRange(port: number): boolean {
  return Number.isInteger(port) && port >= PORT_RANGE_LOW && port <= PORT_RANGE_HIGH;
}

/** `count` distinct ports drawn at random from the NAT's range. */
export function randomPorts(count: number, random: (n: number) => number): number[] {
  const swapped = new Map<number, number>();
  const at = (i: number) => swapped.get(i) ?? PORT_RANGE_LOW + i;
  const out: number[] = [];
  let n = PORT_RANGE;
  while (out.length < count && n > 0) {
    const j = random(n);
    out.push(at(j));
    swapped.set(j, at(n - 1));
    n--;
  }
  return out;
}

/**
 * Pacing, budget and back-off of attempts towards one peer. An attempt sends `probes` (easy side)
 * or opens `sockets` mappings (hard side) over `windowMs`; `take` hands out what is due at a tick.
 */
export class BirthdayPlan {
  private attemptStartMs = -Infinity;
  private sentThisAttempt = 0;
  private failures = 0;
  private nextAttemptMs = 0;
  /** Probe datagrams sent, with when, for the hourly budget (oldest first). */
  private readonly spent: { atMs: number; n: number }[] = [];
  attempts = 0;
  probesSent = 0;

  constructor(
    readonly role: BirthdayRole,
    private readonly limits: BirthdayLimits = DEFAULT_BIRTHDAY_LIMITS,
  ) {}

  /** Datagrams one attempt costs this side. */
  private attemptCost(): number {
    if (this.role === 'sweep') return SWEEP_PROBES;
    if (this.role === 'stagger') return STAGGER_PROBES;
    return this.role === 'easy' ? this.limits.probes : this.limits.sockets;
  }

  private spentInLastHour(nowMs: number): number {
    while (this.spent.length > 0 && nowMs - this.spent[0].atMs >= 3_600_000) this.spent.shift();
    return this.spent.reduce((s, e) => s + e.n, 0);
  }

  active(nowMs: number): boolean {
    return nowMs - this.attemptStartMs < this.limits.windowMs;
  }

  /**
   * Whether a new attempt may start now (none running, back-off over or `peerStarted`, budget left);
   * starts it if so. `peerStarted`: both sides hard, the peer's attempt has started, and ours must run
   * with it whatever our back-off says (the budget still holds).
   */
  start(nowMs: number, peerStarted = false): boolean {
    if (this.active(nowMs) || (nowMs < this.nextAttemptMs && !peerStarted)) return false;
    if (this.spentInLastHour(nowMs) + this.attemptCost() > this.limits.hourlyBudget) return false;
    this.attemptStartMs = nowMs;
    this.sentThisAttempt = 0;
    this.attempts++;
    return true;
  }

  /**
   * How many probes (easy) or sockets (hard) are due by `nowMs` in the running attempt: spread evenly
   * over the window for the easy side, all at once for the hard side (its mappings must be open
   * before the probes arrive) and for both paired roles (the fewer other flows take ports of the
   * NAT between them, the smaller the drift). Counts them against the budget.
   */
  take(nowMs: number): number {
    if (!this.active(nowMs)) return 0;
    const total = this.attemptCost();
    // The easy side's probes go out over the window but its last second, which is left for the pongs.
    const spread = Math.max(1, this.limits.windowMs - PROBE_TAIL_MS);
    const due = this.role !== 'easy' ? total : Math.min(total, Math.ceil((total * (nowMs - this.attemptStartMs + 1)) / spread));
    const n = Math.max(0, due - this.sentThisAttempt);
    if (n > 0) {
      this.sentThisAttempt += n;
      this.probesSent += n;
      this.spent.push({ atMs: nowMs, n });
    }
    return n;
  }

  /** The attempt met: no back-off. */
  succeeded(): void {
    this.failures = 0;
    this.attemptStartMs = -Infinity;
    this.nextAttemptMs = 0;
  }

  /**
   * The attempt's window passed without a meeting: after the first failure in a row wait
   * firstRetryMs, after the n-th (n ≥ 2) backoffMs × 2^(n − 2), capped.
   */
  failed(nowMs: number): void {
    this.failures++;
    this.attemptStartMs = -Infinity;
    const wait = this.failures === 1 ? this.limits.firstRetryMs : this.limits.backoffMs * 2 ** (this.failures - 2);
    this.nextAttemptMs = nowMs + Math.min(this.limits.maxBackoffMs, wait);
  }

  /** When the next attempt may start (for status). */
  nextAttemptAtMs(): number {
    return this.nextAttemptMs;
  }
}
