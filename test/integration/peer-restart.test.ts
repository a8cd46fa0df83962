// A peer restarts and its old direct path dies with it: here B comes back on another port (a config
// without ListenPort gets a new one at every start; a path through a birthday-probing socket dies the
// same way). A must not keep trusting the dead path: replies resume through the relay within a
// second, then take the new direct path.
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { firstReplyAfter, freshStart, restartBWhilePinging } from '../../src/lab/first-reply.js';
import { FIRST_REPLY_LIMIT_MS } from '../helpers/first-reply-cases.js';
import { natConfig } from '../../src/lab/nat-world.js';

const why = labUnavailable(['nft', 'conntrack', 'openssl', 'ping']);

if (why) t.plan(0, why);
else {
  t.test('a peer that restarts on another port: replies resume within 1 s, then go direct again', async (t) => {
    const lab = new Lab(t);
    const s = await freshStart(lab, ['eim', 'eim']);
    const w = s.world;
    const pathOfB = async () => JSON.parse((await lab.cli(['status', w.a.iface, '--json'])).stdout).peers[0].path as { kind: string; endpoint?: string };
    t.ok(
      await waitFor(async () => {
        await lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '1', w.b.mesh4]);
        return (await pathOfB()).endpoint?.endsWith(':51820') === true;
      }, 15_000, 200),
      'first, a direct path to B on port 51820',
    );
    const moved = natConfig(w, w.b, w.a).replace('ListenPort = 51820', 'ListenPort = 51821');
    const { upAt, log } = await restartBWhilePinging(s, 50, 2000, moved);
    const first = firstReplyAfter(log, upAt);
    t.ok(first !== null, 'replies resumed after the restart');
    if (first !== null) t.ok(first.at - upAt < FIRST_REPLY_LIMIT_MS, `first reply ${first.at - upAt} ms after the restarted daemon was up`);
    t.ok(
      await waitFor(async () => {
        await lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '1', w.b.mesh4]);
        const p = await pathOfB();
        return p.kind === 'direct' && p.endpoint?.endsWith(':51821') === true;
      }, 15_000, 200),
      'then a direct path to the new port',
    );
  });
}
