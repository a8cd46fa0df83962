// Live peer management: add → reload → the new peer answers while a ping to an untouched peer keeps
// running (at most one lost packet across several reloads); remove → reload → the removed peer's
// traffic is refused and its route is gone.
import t from 'tap';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import type { Host } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping']);

function conf(self: Host, peers: { h: Host; endpoint: boolean }[]): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.priv}`,
    `Address = ${self.mesh4}/24`,
    'ListenPort = 51820',
    '',
    ...peers.flatMap(({ h, endpoint }) => ['[Peer]', `PublicKey = ${h.keys.pub}`, `AllowedIPs = ${h.mesh4}/32`, ...(endpoint ? [`Endpoint = ${h.underlay}:51820`] : []), '']),
  ].join('\n');
}

if (why) t.plan(0, why);
else {
  t.test('peers added and removed live, without disturbing the others', async (t) => {
    const lab = new Lab(t);
    const net = await lab.switch('n');
    const mk = async (s: string, n: number): Promise<Host> => {
      const ns = await lab.ns(s);
      await lab.attach(ns, `192.0.2.${n}/24`, net);
      return { ns, iface: `${lab.id}${s}`, underlay: `192.0.2.${n}`, mesh4: `10.77.0.${n}`, mesh6: '', keys: keyPair() };
    };
    const a = await mk('a', 1);
    const b = await mk('b', 2);
    const c = await mk('c', 3);
    const aConf = lab.file(`${a.iface}.conf`, conf(a, [{ h: b, endpoint: true }]));
    const daemonA = await lab.meshd(a.ns, aConf, a.iface);
    await lab.meshd(b.ns, lab.file('b.conf', conf(b, [{ h: a, endpoint: false }])), b.iface);
    await lab.meshd(c.ns, lab.file('c.conf', conf(c, [{ h: a, endpoint: true }])), c.iface);
    t.equal((await lab.exec(a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', b.mesh4])).code, 0, 'A reaches B');
    t.not((await lab.exec(c.ns, 'ping', ['-c', '1', '-W', '1', a.mesh4])).code, 0, 'C is not a peer of A yet');

    const steady = lab.exec(a.ns, 'ping', ['-c', '80', '-i', '0.1', '-W', '1', b.mesh4], 60_000);
    await sleep(500);
    const add = await lab.cli(['peer', 'add', aConf, '--public-key', c.keys.pub, '--name', 'carol', '--endpoint', `${c.underlay}:51820`]);
    t.equal(add.code, 0, add.stderr);
    t.match(add.stdout, /added peer carol with AllowedIPs 10\.77\.0\.3\/32/, 'the next free address is C\'s');
    const rl = await lab.cli(['reload', a.iface, '--json']);
    t.equal(rl.code, 0, rl.stderr);
    t.same(JSON.parse(rl.stdout).added, ['carol']);
    t.equal((await lab.exec(a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', c.mesh4])).code, 0, 'A reaches the new peer');
    t.equal((await lab.exec(c.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', a.mesh4])).code, 0, 'and the new peer reaches A');
    for (let i = 0; i < 3; i++) t.equal((await lab.cli(['reload', a.iface])).code, 0, `reload ${i + 2} (nothing changed)`);

    const list = JSON.parse((await lab.cli(['peer', 'list', aConf, '--json'])).stdout);
    t.equal(list.running, true);
    t.same(list.peers.map((p: { name: string | null }) => p.name), [null, 'carol']);
    t.equal(list.peers[1].path.kind, 'direct', 'peer list shows the live path');

    const rm = await lab.cli(['peer', 'remove', aConf, 'carol']);
    t.equal(rm.code, 0, rm.stderr);
    // The daemon's own pid (`ip netns exec` execs it): a pgrep for its command line could also match
    // the shell running the pgrep, and after PIDs wrap that one may come first.
    daemonA.kill('SIGHUP');
    t.ok(await waitFor(async () => !JSON.parse((await lab.cli(['status', a.iface, '--json'])).stdout).peers.some((p: { name: string }) => p.name === 'carol'), 5000), 'SIGHUP applied the removal');
    t.not((await lab.exec(a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', c.mesh4])).code, 0, 'A no longer reaches C');
    t.not((await lab.exec(c.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', a.mesh4])).code, 0, 'C\'s traffic is refused');
    const routes = (await lab.exec(a.ns, 'ip', ['route', 'show', 'dev', a.iface])).stdout;
    t.notMatch(routes, /10\.77\.0\.3 /, 'the removed peer\'s route is gone');
    const drops = JSON.parse((await lab.cli(['status', a.iface, '--json'])).stdout).drops.outside;
    t.ok(drops['unknown-peer'] + drops['unknown-receiver'] > 0, 'its packets are counted as drops');

    const out = (await steady).stdout;
    const received = Number(/(\d+) received/.exec(out)?.[1]);
    t.ok(received >= 79, `the ping to the untouched peer lost at most one packet across the reloads (${received}/80)`);
  });
}
