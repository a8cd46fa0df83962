// Why a packet was dropped: a closed set, counted per reason and shown by `meshd status --json`.

/** Datagrams from the network (the "outside"). */
export const OUTSIDE_DROP_REASONS = [
  'not-wireguard',
  'bad-size',
  'bad-mac1',
  'cookie-sent',
  'rate-limited',
  'handshake-decrypt',
  'unknown-peer',
  'replayed-timestamp',
  'initiation-flood',
  'unknown-receiver',
  'bad-cookie-reply',
  'counter-too-large',
  'expired-keypair',
  'decrypt-failed',
  'replay',
  'not-ip',
  'bad-ip-length',
  'source-not-allowed',
] as const;

/** Packets from the TUN device (the "inside"). */
export const INSIDE_DROP_REASONS = ['not-ip', 'no-route', 'no-endpoint', 'staged-overflow', 'handshake-gave-up', 'relay-queue-full', 'seal-failed', 'too-big'] as const;

export type OutsideDropReason = (typeof OUTSIDE_DROP_REASONS)[number];
export type InsideDropReason = (typeof INSIDE_DROP_REASONS)[number];

export class DropCounters<R extends string> {
  readonly counts: Record<R, number>;
  constructor(reasons: readonly R[]) {
    this.counts = Object.fromEntries(reasons.map((r) => [r, 0])) as Record<R, number>;
  }
  add(reason: R): void {
    this.counts[reason]++;
  }
  total(): number {
    let t = 0;
    for (const k in this.counts) t += this.counts[k];
    return t;
  }
  snapshot(): Record<R, number> {
    return { ...this.counts };
  }
}
