// Birthday probing behind NATs that hand out ports in order (docs/birthday.md): one such symmetric
// NAT whose counter moved on since STUN (a fresh port tells the easy side where to probe), and both
// sides behind such NATs (each probes after the other's fresh port), also with the relay 100 ms
// away and other hosts opening flows all the while.
import t from 'tap';
import { waitFor } from '../helpers/lab.js';
import { birthdayLabMissing, world, discoLogs, status, untilBirthdayDirect, untilMet, countingWorld } from '../helpers/birthday-world.js';
import { otherFlows, setSequentialNat, steadyFlows, holdOffRelay } from '../../src/lab/nat-world.js';
import { SWEEP_PROBES } from '../../src/transport/birthday.js';

const why = birthdayLabMissing();

if (why) t.plan(0, why);
else {
  t.test('a NAT that hands out ports in order, moved on since STUN: a fresh port tells the easy side where to probe', async (t) => {
    // B's router gives every new mapping the next port from 20000. B's STUN mappings take the first
    // ones; then 3,000 other flows from B's network move the counter on, and only then can B reach
    // the relay (its TCP is refused until then), so no attempt runs before. B's probing sockets get
    // ports past 22000, farther from the announced ones than the easy side's 1,000 probes reach. As
    // its attempt starts B asks STUN from a fresh socket, tells A that port, and A probes beside it.
    const w = await world(t, ['eim', 'symmetric'], [], async (w) => {
      await setSequentialNat(w.lab, w.b, { first: 20000, size: 8192 });
      await holdOffRelay(w.lab, w.b, true);
    });
    const varies = await waitFor(async () => (await status(w, w.b.iface)).natMappingVariesByDestination === true, 15_000, 200);
    t.ok(varies, 'B knows its mapping varies by destination');
    await otherFlows(w.lab, w.b, w.relayAddrs[0], 3000);
    t.pass("3,000 other flows through B's NAT");
    t.equal((await status(w, w.b.iface)).peers[0].birthday?.attempts ?? 0, 0, 'no attempt yet (B has no relay)');
    await holdOffRelay(w.lab, w.b, false);
    t.pass('B may reach the relay now');
    const met = await untilMet(w);
    t.ok(met.ok, `direct via birthday probing (${met.how})\n${met.ok ? '' : discoLogs(w)}`);
    const told = w.logs.b.join('').split('\n').find((l) => l.includes('where a fresh socket of ours was mapped'));
    const port = Number(/"port":(\d+)/.exec(told ?? '')?.[1]);
    t.ok(port >= 22000, `B told A a fresh port past the flows (some of them reuse a source port): ${told}`);
    t.equal((await status(w, w.a.iface)).peers[0].birthday?.attempts, 1, 'on the first attempt');
  });

  t.test('both sides behind NATs that hand out ports in order, moved on since STUN: each probes after the other\'s fresh port, and they meet', async (t) => {
    // Both routers give every new mapping the next port of their own range. The daemons learn their
    // STUN mappings, then 3,000 other flows from each network move both counters on, and only then
    // may they reach the relay. Each takes a fresh port as its attempt starts and tells the other;
    // each then probes the ports after the other's from its data socket.
    const w = await countingWorld(t, 0);
    await Promise.all([otherFlows(w.lab, w.a, w.relayAddrs[0], 3000), otherFlows(w.lab, w.b, w.relayAddrs[0], 3000)]);
    t.pass("3,000 other flows through each side's NAT");
    await holdOffRelay(w.lab, w.a, false);
    await holdOffRelay(w.lab, w.b, false);
    const met = await untilBirthdayDirect(w, 15_000);
    t.ok(met, `direct via birthday probing, both sides\n${met ? '' : discoLogs(w)}`);
    const [a, b] = [await status(w, w.a.iface), await status(w, w.b.iface)];
    t.same([a.peers[0].birthday?.role, b.peers[0].birthday?.role].sort(), ['stagger', 'sweep'], 'one sweeps, the other staggers');
    t.equal(a.peers[0].path.kind, 'direct');
    t.ok((a.counters.birthdayProbesSent ?? 0) <= 2 * SWEEP_PROBES && (b.counters.birthdayProbesSent ?? 0) <= 2 * SWEEP_PROBES, `a few hundred probes a side: ${a.counters.birthdayProbesSent}, ${b.counters.birthdayProbesSent}`);
    t.equal(a.counters.birthdaySocketsOpened + b.counters.birthdaySocketsOpened, 0, 'no extra socket on either side');
    const r = await w.lab.exec(w.a.ns, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', w.b.mesh4], 30_000);
    t.match(r.stdout, /5 received/, 'pings take the path');
  });

  t.test('both sides behind NATs that count up, the relay 100 ms away, 500 new flows a second behind each: the side that waited measures its counter, and they meet', async (t) => {
    // A side waits up to a round trip through the relay (400 ms here: 100 ms on each link, each way)
    // for the other's fresh port; meanwhile the other hosts take up to ~200 ports of its NAT, more than
    // the cycle of 127 makes up for. Each measures how far its counter moved and aims shifted by that
    // (with the shift forced to 0 this fails 3 of 3).
    const w = await countingWorld(t, 100);
    const flows = [steadyFlows(w.lab, w.a, w.relayAddrs[0], 500), steadyFlows(w.lab, w.b, w.relayAddrs[0], 500)];
    await holdOffRelay(w.lab, w.a, false);
    await holdOffRelay(w.lab, w.b, false);
    const met = await untilBirthdayDirect(w, 20_000);
    for (const f of flows) f.kill();
    t.ok(met, `direct via birthday probing, both sides\n${met ? '' : discoLogs(w)}`);
    const measured = [...w.logs.a, ...w.logs.b].join('').split('\n').filter((l) => l.includes('measured where our NAT hands out ports now'));
    t.ok(measured.length >= 2, `each side measured before its probes went: ${measured.length}`);
  });
}
