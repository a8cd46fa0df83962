// A fresh start behind every pair of NAT routers of the lab, both orders: the two daemons start
// together and a ping leaves the moment both are up. Its reply must come within 1 s (through the
// relay when that is the only path), the pings that follow must all be answered, and where a
// direct path forms it takes over without a lost ping. This is the window in which a host's
// interface is up a few milliseconds before its relay connection (DESIGN.md §8).
// The cases are split over two files by A's NAT kind (first-reply-*.test.ts), so that neither file
// comes near tap's per-file timeout on a loaded CI machine (16 cases took 210-300 s in one file).
import t, { type Test } from 'tap';
import { Lab, labUnavailable } from './lab.js';
import { NAT_KINDS, type NatKind } from '../../src/lab/nat-world.js';
import { firstReply, firstReplyAfter, freshStart, restartBWhilePinging, type FreshStart } from '../../src/lab/first-reply.js';

const why = labUnavailable(['nft', 'conntrack', 'openssl', 'ping']);
/** The limit for the first reply, from the later daemon's "interface up" to ping's exit. */
export const FIRST_REPLY_LIMIT_MS = 1000;

/**
 * Where the path must end up. eim ⇄ eim always punches through. A leaky router's conntrack may
 * claim the peer's first punch and move the host's mapping (see nat-world.ts), so with one there,
 * the path is direct or relayed depending on which punch arrived first. A symmetric NAT facing an
 * endpoint-independent one goes direct once birthday probing meets (seconds in), so either; two
 * symmetric NATs, or blocked UDP, leave only the relay.
 */
function expectedPath(a: NatKind, b: NatKind): 'direct' | 'relay' | 'either' {
  if (a === 'eim' && b === 'eim') return 'direct';
  if ([a, b].includes('udp-blocked') || (a === 'symmetric' && b === 'symmetric')) return 'relay';
  return 'either';
}

/** What both daemons saw when the first ping went unanswered: their status and logs, as test comments. */
async function explainNoReply(t: Test, lab: Lab, s: FreshStart): Promise<void> {
  for (const [i, side] of [s.world.a, s.world.b].entries()) {
    const st = await lab.cli(['status', side.iface, '--json']);
    t.comment(`${side.name} status: ${st.stdout.trim()}`);
    t.comment(`${side.name} log:\n${s.daemons[i].log.join('')}`);
  }
}

/** Registers the cases whose A side is behind one of `aKinds` (B: every kind). */
export function firstReplyCases(aKinds: readonly NatKind[]): void {
  if (why) {
    t.plan(0, why);
    return;
  }
  for (const a of aKinds) {
    for (const b of NAT_KINDS) {
      t.test(`${a} ⇄ ${b}: the first ping is answered within 1 s of both daemons being up`, async (t) => {
        const lab = new Lab(t);
        const s = await freshStart(lab, [a, b]);
        const first = await firstReply(s, 5);
        t.ok(first.sinceReadyMs !== null, 'the first ping got a reply');
        if (first.sinceReadyMs === null) await explainNoReply(t, lab, s);
        t.ok(first.sinceReadyMs !== null && first.sinceReadyMs < FIRST_REPLY_LIMIT_MS, `reply ${first.sinceReadyMs} ms after both were up (ping's own RTT ${first.pingRttMs} ms)`);

        const r = await lab.exec(s.world.a.ns, 'ping', ['-c', '20', '-i', '0.1', '-W', '1', s.world.b.mesh4], 30_000);
        const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
        t.equal(received, 20, 'every ping after it was answered, through any change of path');

        const path = JSON.parse((await lab.cli(['status', s.world.a.iface, '--json'])).stdout).peers[0].path;
        const want = expectedPath(a, b);
        if (want === 'either') t.ok(path.kind === 'direct' || path.kind === 'relay', `a working path: ${JSON.stringify(path)}`);
        else t.equal(path.kind, want, `the path is ${want}: ${JSON.stringify(path)}`);

        // B restarts while A keeps pinging: A's handshake to the new process must not wait either.
        const { upAt, log } = await restartBWhilePinging(s, 50, 2000);
        const resumed = firstReplyAfter(log, upAt);
        t.ok(resumed !== null, 'replies resumed after the restart');
        if (resumed === null) return explainNoReply(t, lab, s);
        const { seq: firstSeq, at: firstAt } = resumed;
        t.ok(firstAt - upAt < FIRST_REPLY_LIMIT_MS, `first reply ${firstAt - upAt} ms after the restarted daemon was up`);
        const missing = [];
        for (let seq = firstSeq; seq <= log.sent; seq++) if (!log.replies.has(seq)) missing.push(seq);
        t.same(missing, [], `no ping lost after that (${log.sent - firstSeq + 1} sent)`);
        if (missing.length > 0) {
          // When each was sent, from the replies around it (one ping every 50 ms), against B's start.
          t.comment(`lost: ${missing.map((seq) => `icmp_seq=${seq}, sent about ${firstAt + (seq - firstSeq) * 50 - upAt} ms after B was up`).join('; ')}`);
          await explainNoReply(t, lab, s);
        }
      });
    }
  }
}
