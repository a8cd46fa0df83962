// wg(8) from wireguard-tools against a running meshd: `wg show` reads it, `wg set` changes it live.
import t from 'tap';
import { Lab, labUnavailable } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { meshdBoth, twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['wg', 'ping']);
if (why) t.plan(0, why);
else {
  t.test('wg show and wg set work against meshd', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    // Neither side knows the other's endpoint: nothing can flow until `wg set` gives one.
    await meshdBoth(h, { endpoint: false }, { endpoint: false });
    const A = h.a.iface;

    const before = await lab.exec(h.a.ns, 'ping', ['-c', '1', '-W', '1', h.b.mesh4]);
    t.not(before.code, 0, 'no endpoint: no traffic');

    const set = await lab.run('wg', ['set', A, 'peer', h.b.keys.pub, 'endpoint', `${h.b.underlay}:51820`]);
    t.equal(set.code, 0, set.stderr);
    const after = await lab.exec(h.a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', h.b.mesh4]);
    t.equal(after.code, 0, 'wg set endpoint takes effect live');

    const dump = await lab.run('wg', ['show', A, 'dump']);
    t.equal(dump.code, 0, dump.stderr);
    const [iface, peer] = dump.stdout.trim().split('\n').map((l) => l.split('\t'));
    t.equal(iface[0], h.a.keys.priv, 'private key');
    t.equal(iface[1], h.a.keys.pub, 'public key');
    t.equal(iface[2], '51820', 'listen port');
    t.equal(peer[0], h.b.keys.pub, 'peer key');
    t.equal(peer[2], '192.0.2.2:51820', 'endpoint');
    t.equal(peer[3], '10.77.0.2/32,fd77::2/128', 'allowed ips');
    t.ok(Number(peer[4]) > Date.now() / 1000 - 60, 'latest handshake is recent');
    t.ok(Number(peer[5]) > 0 && Number(peer[6]) > 0, 'transfer counters move');

    const human = await lab.run('wg', ['show', A]);
    t.match(human.stdout, /latest handshake: .*(second|Now)/);

    // Allowed IPs: new prefix → cryptokey routing and a kernel route.
    t.equal((await lab.run('wg', ['set', A, 'peer', h.b.keys.pub, 'allowed-ips', '10.77.0.2/32,fd77::2/128,10.88.0.0/24'])).code, 0);
    t.match((await lab.run('wg', ['show', A, 'allowed-ips'])).stdout, /10\.88\.0\.0\/24/);
    t.match((await lab.exec(h.a.ns, 'ip', ['route', 'show', 'dev', A])).stdout, /10\.88\.0\.0\/24/, 'route added for the new prefix');

    // Add and remove a peer.
    const extra = keyPair();
    t.equal((await lab.run('wg', ['set', A, 'peer', extra.pub, 'allowed-ips', '10.77.0.9/32', 'persistent-keepalive', '25'])).code, 0);
    t.match((await lab.run('wg', ['show', A, 'peers'])).stdout, extra.pub);
    t.match((await lab.exec(h.a.ns, 'ip', ['route', 'show', 'dev', A])).stdout, /10\.77\.0\.9/);
    t.equal((await lab.run('wg', ['set', A, 'peer', extra.pub, 'remove'])).code, 0);
    t.notMatch((await lab.run('wg', ['show', A, 'peers'])).stdout, extra.pub, 'peer removed');
    t.notMatch((await lab.exec(h.a.ns, 'ip', ['route', 'show', 'dev', A])).stdout, /10\.77\.0\.9/, 'its route removed');

    // Listen port.
    t.equal((await lab.run('wg', ['set', A, 'listen-port', '51999'])).code, 0);
    t.equal((await lab.run('wg', ['show', A, 'listen-port'])).stdout.trim(), '51999');
    const st = JSON.parse((await lab.cli(['status', A, '--json'])).stdout);
    t.equal(st.listenPort, 51999, 'meshd status agrees');

    // Bad input through UAPI is refused, the daemon keeps running.
    const bad = await lab.run('wg', ['set', A, 'peer', h.b.keys.pub, 'allowed-ips', '10.0.0.0/99']);
    t.not(bad.code, 0, 'wg set with a bad prefix fails');
    const ping = await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', h.b.mesh4]);
    t.equal(ping.code, 0, 'tunnel still works');
  });

  t.test('FwMark marks the data socket: policy routing by mark applies, and wg set fwmark changes it live', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const A = h.a.iface;
    // On A, packets carrying mark 0x1234 are routed by table 123, where B's underlay address is a blackhole.
    await lab.exec(h.a.ns, 'ip', ['rule', 'add', 'fwmark', '0x1234', 'lookup', '123']);
    await lab.exec(h.a.ns, 'ip', ['route', 'add', 'blackhole', `${h.b.underlay}/32`, 'table', '123']);
    await meshdBoth(h, { extraInterface: 'FwMark = 0x1234' }, {});

    const shown = await lab.run('wg', ['show', A, 'fwmark']);
    t.equal(shown.stdout.trim(), '0x1234', 'wg show reports the mark from the config');
    const marked = await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.3', '-W', '1', h.b.mesh4]);
    t.not(marked.code, 0, "A's marked packets follow the mark's route (a blackhole): no tunnel");
    const st = JSON.parse((await lab.cli(['status', A, '--json'])).stdout) as { drops: { inside: Record<string, number> } };
    t.ok((st.drops.inside['udp-send-failed'] ?? 0) > 0, `the refused sends are counted (${JSON.stringify(st.drops.inside)})`);

    const set = await lab.run('wg', ['set', A, 'fwmark', '0']);
    t.equal(set.code, 0, set.stderr);
    t.equal((await lab.run('wg', ['show', A, 'fwmark'])).stdout.trim(), 'off', 'wg set fwmark 0 clears it');
    const unmarked = await lab.exec(h.a.ns, 'ping', ['-c', '1', '-w', '15', h.b.mesh4], 20_000);
    t.equal(unmarked.code, 0, 'unmarked, the packets take the main table: the tunnel works');
  });
}
