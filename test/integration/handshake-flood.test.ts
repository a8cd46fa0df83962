// Handshakes under an initiation flood, daemon to daemon: A is flooded from a third namespace with
// mac1-valid initiations from strangers (at a steady 2,000 a second, past the under-load threshold
// of 256) while its peer B starts up. Under load A answers an initiation without mac2 with a cookie
// reply; B must receive it, and its next initiation carries mac2 and is let in. If the reply never
// reached B, every initiation of B's would be answered with another cookie and no session would
// come up while the flood lasts.
import t from 'tap';
import { join } from 'node:path';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';
import { packageRoot } from '../../src/package-root.js';

const why = labUnavailable(['ping']);
const FLOODER_JS = join(packageRoot(), 'dist', 'bench', 'flooder.js');
const FLOOD_SECONDS = 30;

if (why) t.plan(0, why);
else {
  t.test('a peer that starts during a flood gets a session through a cookie reply', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const nsC = await lab.ns('c');
    await lab.link(nsC, '198.51.100.3/24', h.a.ns, '198.51.100.1/24');
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { endpoint: false })), h.a.iface);
    const drops = async () => JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout).drops.outside as Record<string, number>;

    const flooder = lab.spawn(nsC, process.execPath, [FLOODER_JS, h.a.keys.pub, '198.51.100.1', '51820', String(FLOOD_SECONDS), '2000']);
    const loaded = await waitFor(async () => ((await drops())['cookie-sent'] ?? 0) > 0, 10_000, 100);
    t.ok(loaded, `A is under load and answers the flood with cookies: ${JSON.stringify(await drops())}`);
    const before = await drops();

    const started = Date.now();
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface);
    // B's first initiation gets a cookie; its retry (REKEY_TIMEOUT, 5 s later) carries mac2.
    const up = await waitFor(async () => (await lab.exec(h.b.ns, 'ping', ['-c', '1', '-W', '1', h.a.mesh4])).code === 0, 20_000, 200);
    const after = await drops();
    t.ok(up, `B's ping answered ${Date.now() - started} ms after it started, during the flood`);
    t.equal(flooder.exitCode, null, 'the flood was still running');
    t.ok((after['cookie-sent'] ?? 0) > (before['cookie-sent'] ?? 0), 'A went on sending cookie replies');
    t.ok((after['rate-limited'] ?? 0) > (before['rate-limited'] ?? 0), "and rate-limited the flood's source");
    const st = JSON.parse((await lab.cli(['status', h.b.iface, '--json'])).stdout) as { peers: { latestHandshake: number | null }[] };
    t.ok(st.peers[0].latestHandshake, 'B has a handshake with A');
    flooder.kill();
    await sleep(100);
  });
}
