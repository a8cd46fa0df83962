// invite on host A, join on host B (network namespaces), meshd up on B: both reach each other;
// a second use of the same invitation is refused, and so is an expired one.
import t from 'tap';
import { existsSync, statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, MESHD_BIN, sleep } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { parseConfig } from '../../src/config/config.js';

const why = labUnavailable(['ping']);

if (why) t.plan(0, why);
else {
  t.test('an invitation brings a new host into the mesh, once', async (t) => {
    const lab = new Lab(t);
    const net = await lab.switch('n');
    const nsA = await lab.ns('a');
    const nsB = await lab.ns('b');
    const nsC = await lab.ns('c');
    await lab.attach(nsA, '192.0.2.1/24', net);
    await lab.attach(nsB, '192.0.2.2/24', net);
    await lab.attach(nsC, '192.0.2.3/24', net);
    const ifA = `${lab.id}a`;
    const ifB = `${lab.id}b`;
    const a = keyPair();
    const aConf = lab.file(`${ifA}.conf`, `[Interface]\nPrivateKey = ${a.priv}\nAddress = 10.77.0.1/24\nListenPort = 51820\n`);
    await lab.meshd(nsA, aConf, ifA);

    const inv = await lab.cli(['invite', aConf, '--name', 'bob', '--endpoint', '192.0.2.1:51820', '--inviter-name', 'alice']);
    t.equal(inv.code, 0, inv.stderr);
    const line = inv.stdout.trim();
    t.match(line, /^meshd-invite:[A-Za-z0-9_-]+$/, 'one line');
    t.match(inv.stderr, /for bob \(10\.77\.0\.2\/24\), valid once until/);
    t.equal(statSync(`${aConf}.invites`).mode & 0o777, 0o600, 'the pending invitation is stored 0600');
    t.equal(parseConfig(readFileSync(aConf, 'utf8'), aConf).peers.length, 0, 'not a WireGuard peer before it is redeemed');
    const listed = JSON.parse((await lab.cli(['peer', 'list', aConf, '--json'])).stdout).peers;
    t.equal(listed.length, 1, 'but peer list shows it');
    t.equal(listed[0].name, 'bob');
    t.same(listed[0].allowedIps, ['10.77.0.2/32'], 'with its reserved address');
    t.ok(listed[0].pending.expiresAt > Date.now(), 'as a pending invitation');

    const dirB = join(lab.dir, 'b');
    const joined = await lab.exec(nsB, process.execPath, [MESHD_BIN, 'join', line, '--interface', ifB, '--config-dir', dirB], 60_000);
    t.equal(joined.code, 0, joined.stderr);
    const bConf = join(dirB, `${ifB}.conf`);
    t.match(joined.stdout, new RegExp(`start it with: meshd up ${bConf.replace(/[.\/]/g, '\\$&')}`), 'says how to start');
    t.equal(statSync(bConf).mode & 0o777, 0o600, 'config written 0600');
    const bCfg = parseConfig(readFileSync(bConf, 'utf8'), bConf);
    t.equal(bCfg.peers[0].name, 'alice');
    t.notMatch(readFileSync(bConf, 'utf8'), new RegExp(JSON.parse(Buffer.from(line.slice(13), 'base64url').toString()).enrollmentKey.replace(/[+/=]/g, '\\$&')), 'the enrollment key is not the host\'s key');
    const aCfg = parseConfig(readFileSync(aConf, 'utf8'), aConf);
    t.equal(aCfg.peers.length, 1, 'A added the new host as a peer');
    t.equal(aCfg.peers[0].name, 'bob');
    const after = JSON.parse((await lab.cli(['peer', 'list', aConf, '--json'])).stdout).peers;
    t.equal(after.length, 1, 'after redemption: one peer, no pending invitation');
    t.equal(after[0].pending, undefined);

    await lab.meshd(nsB, bConf, ifB);
    t.equal((await lab.exec(nsB, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '10.77.0.1'])).code, 0, 'B reaches A');
    t.equal((await lab.exec(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '10.77.0.2'])).code, 0, 'A reaches B');

    const again = await lab.exec(nsB, process.execPath, [MESHD_BIN, 'join', line, '--interface', ifB, '--config-dir', dirB]);
    t.equal(again.code, 1, 'an existing config is not overwritten without --force');
    t.match(again.stderr, /exists: pass --force/);

    const dirC = join(lab.dir, 'c');
    const second = await lab.exec(nsC, process.execPath, [MESHD_BIN, 'join', line, '--interface', `${lab.id}c`, '--config-dir', dirC], 60_000);
    t.equal(second.code, 1, 'a second use is refused');
    t.equal(second.stderr, 'meshd: the inviting host refused: this invitation was already used\n');
    t.notOk(existsSync(join(dirC, `${lab.id}c.conf`)), 'and nothing is written');

    const short = await lab.cli(['invite', aConf, '--name', 'carol', '--endpoint', '192.0.2.1:51820', '--expires', '1s']);
    t.equal(short.code, 0, short.stderr);
    await sleep(1500);
    const late = await lab.exec(nsC, process.execPath, [MESHD_BIN, 'join', short.stdout.trim(), '--interface', `${lab.id}c`, '--config-dir', dirC]);
    t.equal(late.code, 1, 'an expired invitation is refused');
    t.match(late.stderr, /expired/);
    t.notOk(existsSync(join(dirC, `${lab.id}c.conf`)));

    const bad = await lab.cli(['join', 'meshd-invite:garbage']);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /damaged/);
  });
}

if (!why) {
  t.test('an invitation redeemed through the relay, from behind a NAT, with no endpoint given', { skip: labUnavailable(['nft', 'conntrack', 'openssl']) ?? false }, async (t) => {
    const { natWorld, natConfig, relayArgs } = await import('../../src/lab/nat-world.js');
    const lab = new Lab(t);
    const w = await natWorld(lab, ['eim', 'eim']);
    await lab.relay(w.relayNs, relayArgs(w));
    // Alice's config lists no peers yet: only the relay.
    const aConf = lab.file(`${w.a.iface}.conf`, natConfig(w, w.a, w.b).split('[Peer]')[0]);
    await lab.meshd(w.a.ns, aConf, w.a.iface);
    const inv = await lab.cli(['invite', aConf, '--name', 'bob', '--inviter-name', 'alice']);
    t.equal(inv.code, 0, inv.stderr);
    const dirB = join(lab.dir, 'bob');
    const joined = await lab.exec(w.b.ns, process.execPath, [MESHD_BIN, 'join', inv.stdout.trim(), '--interface', w.b.iface, '--config-dir', dirB], 60_000);
    t.equal(joined.code, 0, joined.stderr);
    const bConf = join(dirB, `${w.b.iface}.conf`);
    const text = readFileSync(bConf, 'utf8');
    t.match(text, /Relay = wss:\/\/203\.0\.113\.10:8443\//, 'the relay came with the invitation');
    t.match(text, /RelayCAFile = .*-relay-ca\.pem/, 'and so did its self-signed CA');
    t.notMatch(text, /Endpoint =/, 'no endpoint: the hosts find each other');
    await lab.meshd(w.b.ns, bConf, w.b.iface);
    t.equal((await lab.exec(w.b.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', '10.77.0.1'])).code, 0, 'bob reaches alice');
    t.equal((await lab.exec(w.a.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', '10.77.0.2'])).code, 0, 'alice reaches bob');
  });
}
