// A path found by birthday probing over time: it survives 60 s without traffic, and when the hard
// side's router forgets every mapping mid-transfer, the transfer finishes (via the relay, or a new
// direct path).
import t from 'tap';
import { sleep } from '../helpers/lab.js';
import { transfer } from '../helpers/two-hosts.js';
import { birthdayLabMissing, world, status, untilMet } from '../helpers/birthday-world.js';

const why = birthdayLabMissing();

if (why) t.plan(0, why);
else {
  t.test('the path found survives 60 s idle; when the hard side\'s router forgets it, a transfer finishes via the relay', async (t) => {
    const w = await world(t, ['eim', 'symmetric']);
    const met = await untilMet(w);
    t.ok(met.ok, `direct via birthday probing (${met.how})`);
    await sleep(60_000);
    const r = await w.lab.exec(w.a.ns, 'ping', ['-c', '10', '-i', '0.2', '-W', '2', w.b.mesh4], 30_000);
    t.match(r.stdout, /10 received/, 'after 60 s without traffic every ping is answered');
    const [a, b] = [await status(w, w.a.iface), await status(w, w.b.iface)];
    t.equal(a.peers[0].path.via, 'birthday probing', 'on the same path (A)');
    t.equal(b.peers[0].path.via, 'birthday probing', '(B)');
    t.equal(b.counters.birthdaySocketsOpen, b.peers[0].birthday?.sockets === 0 ? 0 : 1, 'no new attempt: still the one socket (none when met on the data socket)');

    const sending = transfer(w.lab, w.a.ns, w.b.ns, w.b.mesh4, 30_000_000);
    await sleep(1500);
    t.equal((await w.lab.exec(w.b.router, 'conntrack', ['-F'])).code, 0, "B's router forgets every mapping mid-transfer");
    const done = await sending;
    t.equal(done.sent.split(' ')[0], '30000000', `the transfer completes: ${done.sendErr}`);
    t.equal(done.received, done.sent, 'intact');
    const after = await status(w, w.a.iface);
    t.ok(['relay', 'direct'].includes(after.peers[0].path.kind), `then relayed or direct again: ${JSON.stringify(after.peers[0].path)}`);
  });
}
