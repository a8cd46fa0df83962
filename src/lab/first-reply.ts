// A fresh start in the NAT lab, as a user meets it: both daemons started together behind their NAT
// routers, and a ping sent the moment both are up. Measures how long the first reply takes (the
// relay-path issue's "no packet waits for a retry timer"); used by the tests and by bench/relay.ts.
import type { ChildProcess } from 'node:child_process';
import type { Lab } from './netns-lab.js';
import { natConfig, natWorld, relayArgs, type NatKind, type NatWorld } from './nat-world.js';

export interface FreshStart {
  world: NatWorld;
  /** When the later of the two daemons logged "interface up" (its own clock, ms since the epoch). */
  readyAt: number;
  daemons: [ChildProcess & { log: string[] }, ChildProcess & { log: string[] }];
}

/** Builds the world for `kinds`, starts the relay, then both daemons at once. */
export async function freshStart(lab: Lab, kinds: [NatKind, NatKind], relayExtra: string[] = []): Promise<FreshStart> {
  const world = await natWorld(lab, kinds);
  await lab.relay(world.relayNs, relayArgs(world, relayExtra));
  const daemons = await Promise.all([
    lab.meshd(world.a.ns, lab.file('a.conf', natConfig(world, world.a, world.b)), world.a.iface),
    lab.meshd(world.b.ns, lab.file('b.conf', natConfig(world, world.b, world.a)), world.b.iface),
  ]);
  return { world, readyAt: Math.max(...daemons.map(upAt)), daemons };
}

/** The time a daemon's JSON log says its interface came up. */
function upAt(d: { log: string[] }): number {
  for (const line of d.log.join('').split('\n')) {
    if (!line.includes('"interface up"')) continue;
    const t = (JSON.parse(line) as { time?: number }).time;
    if (typeof t === 'number') return t;
  }
  throw new Error('no "interface up" line in the daemon log');
}

export interface FirstReply {
  /** From both daemons up to the ping's reply (wall clock, includes starting `ping`); null: no reply. */
  sinceReadyMs: number | null;
  /** The round trip `ping` itself measured for that first packet. */
  pingRttMs: number | null;
}

/** One ping from A to B's mesh address right away; how long after readiness its reply came. */
export async function firstReply(s: FreshStart, waitSec = 6): Promise<FirstReply> {
  const r = await s.world.lab.exec(s.world.a.ns, 'ping', ['-c', '1', '-W', String(waitSec), s.world.b.mesh4], (waitSec + 10) * 1000);
  const done = Date.now();
  const rtt = /time=([\d.]+) ms/.exec(r.stdout);
  if (r.code !== 0 || !rtt) return { sinceReadyMs: null, pingRttMs: null };
  return { sinceReadyMs: done - s.readyAt, pingRttMs: Number(rtt[1]) };
}

export interface ReplyLog {
  /** Wall-clock ms at which each answered icmp_seq's reply arrived (ping -D), by sequence number. */
  replies: Map<number, number>;
  sent: number;
}

/** Parses `ping -D` output: "[1733140000.123456] 64 bytes from …: icmp_seq=N ttl=… time=… ms". */
export function parsePingD(out: string): ReplyLog {
  const replies = new Map<number, number>();
  for (const m of out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) /gm)) {
    const seq = Number(m[2]);
    if (!replies.has(seq)) replies.set(seq, Math.round(Number(m[1]) * 1000));
  }
  return { replies, sent: Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0) };
}

/** The first reply (by sequence number) that arrived at or after `at` (wall-clock ms); null: none. */
export function firstReplyAfter(log: ReplyLog, at: number): { seq: number; at: number } | null {
  let first: { seq: number; at: number } | null = null;
  for (const [seq, t] of log.replies) if (t >= at && (first === null || seq < first.seq)) first = { seq, at: t };
  return first;
}

/**
 * Restarts B's daemon while A pings it every `intervalMs`: the peer-restart window, in which A's
 * handshake meets a relay that has no B yet and a B that no longer has A's session. A pings until
 * the new daemon has been up for `afterUpMs` (however long the stop and the start took: a fixed
 * ping count could run out before a slow restart finished). Returns the new daemon's "interface up"
 * time and the ping log. `bConfig`: the restarted daemon's config, if not B's first one.
 */
export async function restartBWhilePinging(s: FreshStart, intervalMs = 50, afterUpMs = 2000, bConfig?: string): Promise<{ upAt: number; log: ReplyLog }> {
  const { world, daemons } = s;
  const pinging = world.lab.spawn(world.a.ns, 'ping', ['-D', '-i', String(intervalMs / 1000), '-W', '1', world.b.mesh4]);
  const pingDone = new Promise((r) => pinging.once('exit', r));
  await new Promise((r) => setTimeout(r, 500));
  const old = daemons[1];
  const gone = new Promise((r) => old.once('exit', r));
  old.kill('SIGTERM');
  await gone;
  const fresh = await world.lab.meshd(world.b.ns, world.lab.file('b.conf', bConfig ?? natConfig(world, world.b, world.a)), world.b.iface);
  daemons[1] = fresh;
  await new Promise((r) => setTimeout(r, afterUpMs));
  pinging.kill('SIGINT'); // ping prints its summary ("N packets transmitted") and exits
  await pingDone;
  const log = parsePingD(pinging.log.join(''));
  // The pings of the last second before SIGINT had no time to be answered (-W 1): not counted as sent.
  log.sent = Math.max(0, log.sent - Math.ceil(1000 / intervalMs));
  return { upAt: upAt(fresh), log };
}
