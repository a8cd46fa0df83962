// Abuse of meshd-relay: a failed key proof, a key not on the allow-list, a client that never logs
// in, a frame before login, an oversized frame, a duplicate login, a flood, and hundreds of garbage
// connections. Each is refused or dropped and counted in /metrics; the legitimate peers' traffic
// keeps flowing throughout.
import t from 'tap';
import { join } from 'node:path';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { blockDirectUdp, relayArgs, relayConfig, relayLab, relayUrl, RELAY_PORT, promMetric } from '../helpers/relay-lab.js';

const ABUSER_JS = join(import.meta.dirname, '..', 'helpers', 'relay-abuser.js');
const why = labUnavailable(['nft', 'openssl', 'ping', 'curl']);

if (why) t.plan(0, why);
else {
  t.test('abusive clients are refused and counted while peers keep talking', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    const nsC = await lab.ns('c');
    await lab.attach(nsC, '192.0.2.3/24', rl.net);
    const abuser = keyPair();
    const allow = lab.file('allow.keys', `# the mesh\n${rl.a.keys.pub}\n${rl.b.keys.pub}\n${abuser.pub}\n`);
    await lab.relay(rl.relayNs[0], relayArgs(rl, 0, false, ['--allow-keys', allow, '--login-timeout-ms', '1500', '--client-rate', '400000', '--client-burst', '100000', '--max-frame-bytes', '16384']));
    const url = relayUrl(rl, 0, false);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url])), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url])), rl.b.iface);
    t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'A and B connected via the relay');

    const pinging = lab.exec(rl.a.ns, 'ping', ['-c', '100', '-i', '0.1', '-W', '2', rl.b.mesh4], 60_000);
    await sleep(300);
    const r = await lab.exec(nsC, process.execPath, [ABUSER_JS, url, abuser.priv, rl.a.keys.pub], 120_000);
    t.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    t.equal(out.badProof.code, 4002, `failed key proof closed: ${out.badProof.reason}`);
    t.equal(out.notAllowed.code, 4004, `unknown key closed: ${out.notAllowed.reason}`);
    t.equal(out.neverLogsIn.code, 4007, `silent client closed: ${out.neverLogsIn.reason}`);
    t.ok(out.neverLogsIn.afterMs >= 1400 && out.neverLogsIn.afterMs < 5000, `after the login deadline (${out.neverLogsIn.afterMs} ms)`);
    t.equal(out.frameBeforeLogin.code, 4001, `frame before login closed: ${out.frameBeforeLogin.reason}`);
    t.equal(out.oversizedLoggedIn, true);
    t.equal(out.oversized.code, 1009, 'oversized frame closed (message too big)');
    t.equal(out.secondLoggedIn, true);
    t.equal(out.replaced.code, 4006, 'a second login with the same key replaces the first');
    t.ok(out.flooded > 1000, `flooded ${out.flooded} packets`);
    t.equal(out.rawGarbageClosed, 200, 'garbage TCP connections all closed');
    t.ok(out.junkCloseCodes.every((c: number) => c === 4001 || c === 4003), `junk frames closed with ${out.junkCloseCodes}`);

    const ping = (await pinging).stdout;
    const received = Number(/(\d+) received/.exec(ping)?.[1] ?? 0);
    t.ok(received >= 95, `the peers kept talking: ${received}/100 pings answered during the abuse`);

    const metrics = (await lab.exec(nsC, 'curl', ['-s', `http://${rl.relayAddr[0]}:${RELAY_PORT}/metrics`])).stdout;
    const refused = (r: string) => promMetric(metrics, `meshd_relay_logins_refused_total{reason="${r}"}`);
    t.ok(refused('bad-proof') >= 1, 'bad-proof counted');
    t.ok(refused('not-allowed') >= 1, 'not-allowed counted');
    t.ok(refused('login-timeout') >= 1, 'login-timeout counted');
    t.ok(refused('frame-before-login') >= 1, 'frame-before-login counted');
    t.ok(refused('malformed-login') + refused('frame-before-login') >= 100, 'junk frames counted');
    const drops = (r: string) => promMetric(metrics, `meshd_relay_drops_total{reason="${r}"}`);
    t.ok(drops('oversized-frame') >= 1, 'oversized frame counted');
    t.ok(drops('rate-limited') > 0, `flood rate-limited: ${drops('rate-limited')}`);
    t.equal(promMetric(metrics, 'meshd_relay_replaced_total'), 1, 'replacement counted');
    t.equal(promMetric(metrics, 'meshd_relay_clients'), 2, 'only A and B remain connected');
    const health = await lab.exec(nsC, 'curl', ['-s', `http://${rl.relayAddr[0]}:${RELAY_PORT}/healthz`]);
    t.match(health.stdout, /^ok 2 clients/);

    const st = JSON.parse((await lab.cli(['status', rl.a.iface, '--json'])).stdout);
    t.ok(st.drops.outside['not-wireguard'] > 0, `A dropped the flood's junk: ${st.drops.outside['not-wireguard']}`);
  });

  t.test('SIGHUP reloads the allow-list', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    const allow = lab.file('allow.keys', `${rl.a.keys.pub}\n`);
    const relay = await lab.relay(rl.relayNs[0], relayArgs(rl, 0, false, ['--allow-keys', allow]));
    const url = relayUrl(rl, 0, false);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url])), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url])), rl.b.iface);
    const state = async () => JSON.parse((await lab.cli(['status', rl.b.iface, '--json'])).stdout).relays[0];
    await sleep(1500);
    t.not((await state()).state, 'connected', 'B is refused while not on the list');
    t.match((await state()).lastError, /4004 key not allowed/, 'and status says why');
    lab.file('allow.keys', `${rl.a.keys.pub}\n${rl.b.keys.pub}\n`);
    relay.kill('SIGHUP');
    t.ok(await waitFor(async () => (await state()).state === 'connected', 15_000), 'after SIGHUP, B gets in');
    t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'and A reaches B');
  });
}
