// A real mesh (DESIGN.md §9): hosts behind NAT routers follow one signed roster carried by a
// meshd-relay with --mesh-key. Invitations bring hosts in without any config naming another host;
// removal reaches every host and the relay within seconds; bad rosters change nothing; the roster
// survives a relay restart and carries across two relays.
import t from 'tap';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Lab, labUnavailable, MESHD_BIN, waitFor, sleep, exited } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { controlRequest } from '../../src/control/control.js';
import { packageRoot } from '../../src/package-root.js';
import { promMetric } from '../helpers/relay-lab.js';
import { adminUp, allReach, hostConfig, inviteAndJoin, meshLab, meshRelay, pingWithin, relayMetrics, relayUrlOf, status, type Member } from '../helpers/mesh-lab.js';

const ROSTER_CLIENT = join(packageRoot(), 'dist', 'test', 'helpers', 'roster-client.js');
const UDP_ECHO = join(packageRoot(), 'dist', 'test', 'helpers', 'udp-echo.js');
import type { NatHost } from '../../src/lab/nat-world.js';

const why = labUnavailable(['ping', 'nft', 'conntrack', 'openssl', 'curl', 'wireguard-go', 'wg', 'dig']);

if (why) t.plan(0, why);
else {
  t.test('invitations make a mesh; a fourth host joins live; a removed host is dropped everywhere', async (t) => {
    const lab = new Lab(t);
    const m = await meshLab(lab, ['eim', 'symmetric', 'eim', 'eim']);
    const { admin } = await adminUp(m, t);
    const b = await inviteAndJoin(m, admin, m.hosts[1], 'bob', t, 'dev');
    const c = await inviteAndJoin(m, admin, m.hosts[2], 'carol', t);
    await allReach(m, [admin, b, c], t, 15_000, 'three hosts');

    // Names: every host answers for every member, on its own mesh address.
    const dig = async (on: Member, ...q: string[]) => (await lab.exec(on.h.ns, 'dig', ['+time=1', '+tries=3', `@${on.addr}`, ...q])).stdout;
    const short = async (on: Member, ...q: string[]) => (await dig(on, '+short', ...q)).trim();
    const bob6 = /^Address = .*, ([0-9a-f:]+)\//m.exec(readFileSync(b.file, 'utf8'))?.[1];
    t.ok(bob6, `bob got an IPv6 mesh address too (${bob6})`);
    for (const x of [admin, b, c]) {
      t.equal(await short(x, 'bob.mesh', 'A'), b.addr, `${x.h.name}: bob.mesh A`);
      t.equal(await short(x, 'BOB.mesh', 'AAAA'), bob6, `${x.h.name}: BOB.mesh AAAA (names are case-insensitive)`);
      t.equal(await short(x, '-x', b.addr), 'bob.mesh.', `${x.h.name}: -x ${b.addr}`);
      t.match(await dig(x, 'example.com', 'A'), /status: REFUSED/, `${x.h.name}: another domain is REFUSED`);
      t.match(await dig(x, 'nobody.mesh', 'A'), /status: NXDOMAIN/, `${x.h.name}: a name no member has is NXDOMAIN`);
    }
    const junk = await lab.exec(c.h.ns, process.execPath, [UDP_ECHO, 'junk', b.addr, '53', '10000'], 60_000);
    t.match(junk.stdout, /10000 sent/, '10,000 random datagrams to port 53');
    t.equal(await short(b, 'carol.mesh', 'A'), c.addr, 'the resolver still answers');
    const names = (await status(b.h)).names!;
    const handled = names.drops['dns-malformed'] + names.drops['dns-not-query'] + Object.values(names.answered).reduce((a, n) => a + n, 0);
    t.ok(names.drops['dns-malformed'] > 1000 && handled > 5000, `and counted the garbage (${names.drops['dns-malformed']} malformed, ${handled} datagrams handled; the rest lost on the way)`);
    t.same(names.listen.sort(), [`${b.addr}:53`, `[${bob6}]:53`].sort(), 'it listens on the mesh addresses only');

    const before = [admin, b, c].map((x) => ({ pid: x.proc.pid, text: readFileSync(x.file, 'utf8') }));
    const started = Date.now();
    const d = await inviteAndJoin(m, admin, m.hosts[3], 'dave', t);
    const reach = await Promise.all([admin, b, c].map((x) => pingWithin(m, x.h, d.addr, 10_000)));
    reach.forEach((ms, i) => t.ok(ms !== null, `${[admin, b, c][i].h.name} reaches the fourth host (${ms} ms after its daemon was up, ${Date.now() - started} ms after the invite)`));
    await allReach(m, [admin, b, c, d], t, 10_000, 'four hosts');
    t.ok(await waitFor(async () => (await short(b, 'dave.mesh', 'A')) === d.addr, 10_000), 'the fourth host is resolvable everywhere (bob)');
    t.equal(await short(c, 'dave.mesh', 'A'), d.addr, '(carol)');
    [admin, b, c].forEach((x, i) => {
      t.equal(x.proc.exitCode, null, `${x.h.name}'s daemon still runs`);
      t.equal(x.proc.pid, before[i].pid, `${x.h.name}'s daemon was not restarted`);
      t.equal(readFileSync(x.file, 'utf8'), before[i].text, `${x.h.name}'s config was not edited`);
    });

    const list = await lab.cli(['mesh', 'list', b.h.iface, '--json']);
    t.equal(list.code, 0, list.stderr);
    const l = JSON.parse(list.stdout) as { serial: number; members: { name: string; groups: string[]; self: boolean; online: boolean | null; path: { kind: string } | null }[] };
    t.same(l.members.map((x) => x.name).sort(), ['admin', 'bob', 'carol', 'dave'], 'mesh list on any host: every member');
    t.same(l.members.find((x) => x.name === 'bob')?.groups, ['dev'], 'with its groups');
    t.ok(l.members.find((x) => x.name === 'bob')?.self, 'and itself marked');
    t.ok(l.members.find((x) => x.name === 'admin')?.online, 'and who is online');

    // Removal: a ping between two others runs throughout and loses nothing.
    for (const x of [admin, b, c]) {
      const routes = await lab.exec(x.h.ns, 'ip', ['route', 'show', 'dev', x.h.iface]);
      t.match(routes.stdout, new RegExp(`^${d.addr.replace(/\./g, '\\.')} `, 'm'), `before the removal, ${x.h.name} routes the fourth host's address`);
    }
    const flow = lab.exec(b.h.ns, 'ping', ['-c', '100', '-i', '0.1', '-W', '2', c.addr], 60_000);
    await sleep(1000);
    const dKey = (await status(d.h)).publicKey;
    const removedAt = Date.now();
    const rm = await lab.cli(['mesh', 'remove', admin.file, 'dave']);
    t.equal(rm.code, 0, rm.stderr);
    t.match(rm.stdout, /removed dave in roster serial \d+; the running daemon applies it/);
    for (const x of [admin, b, c]) {
      const gone = await waitFor(async () => !(await status(x.h)).peers.some((p) => p.publicKey === dKey), 10_000);
      t.ok(gone, `${x.h.name} dropped the removed host (${Date.now() - removedAt} ms)`);
      const routes = await lab.exec(x.h.ns, 'ip', ['route', 'show', 'dev', x.h.iface]);
      t.notMatch(routes.stdout, new RegExp(`${d.addr.replace(/\./g, '\\.')}\\b`), `${x.h.name} has no route to it`);
    }
    t.ok(await waitFor(async () => /status: NXDOMAIN/.test(await dig(b, 'dave.mesh', 'A')), 10_000), 'a removed member answers NXDOMAIN');
    for (const x of [admin, b, c]) t.equal((await lab.exec(d.h.ns, 'ping', ['-c', '2', '-i', '0.3', '-W', '1', x.addr])).code, 1, `${x.h.name} accepts no packet from the removed host`);
    const closed = await waitFor(async () => promMetric(await relayMetrics(m, 0), 'meshd_relay_member_connections_closed_total') >= 1, 10_000);
    t.ok(closed, 'the relay closed its connection');
    const refused = await waitFor(async () => promMetric(await relayMetrics(m, 0), 'meshd_relay_logins_refused_total{reason="not-member"}') >= 1, 15_000);
    t.ok(refused, 'and refuses its login');
    t.ok(promMetric(await relayMetrics(m, 0), 'meshd_relay_roster_deltas_sent_total') > 0, 'the relay pushed changes to the daemons as deltas');
    const f = await flow;
    t.match(f.stdout, / 0% packet loss/, `the others lost nothing: ${f.stdout.split('\n').find((x) => x.includes('packet loss'))}`);
  });

  t.test('forged, stale, truncated and foreign rosters change nothing; the roster outlives a relay restart and relays going down', async (t) => {
    const lab = new Lab(t);
    const m = await meshLab(lab, ['eim', 'eim', 'symmetric']);
    // The admin host has a fixed public endpoint (a port forward on its router).
    const h1 = m.hosts[0];
    await lab.exec(h1.router, 'nft', ['-f', lab.file('fwd.nft', `table ip fwd {\n  chain pre { type nat hook prerouting priority -100; iifname "${h1.wanDev}" udp dport 51820 dnat to ${h1.lanAddr}; }\n}\n`)]);
    const file = hostConfig(m, h1, [0]);
    // A stock WireGuard host (wireguard-go) on the internet, a static [Peer] of the admin host.
    const wg = keyPair();
    const wgNs = await lab.ns('wg');
    await lab.attach(wgNs, '203.0.113.50/24', m.inet);
    const wgIf = `${lab.id}wg`;
    await lab.wireguardGo(wgNs, wgIf);
    const wgConf = lab.file('wg.conf', `[Interface]\nPrivateKey = ${wg.priv}\nListenPort = 51820\n[Peer]\nPublicKey = ${h1.pub}\nAllowedIPs = ${h1.mesh4}/32\n`);
    t.equal((await lab.exec(wgNs, 'wg', ['setconf', wgIf, wgConf])).code, 0, 'wg setconf');
    await lab.exec(wgNs, 'ip', ['addr', 'add', '10.99.0.1/24', 'dev', wgIf]);
    await lab.exec(wgNs, 'ip', ['link', 'set', wgIf, 'mtu', '1280', 'up']);
    await lab.exec(wgNs, 'ip', ['route', 'add', `${h1.mesh4}/32`, 'dev', wgIf]); // what wg-quick does for AllowedIPs
    appendFileSync(file, `\n[Peer]\nName = stock\nPublicKey = ${wg.pub}\nAllowedIPs = 10.99.0.1/32\nEndpoint = 203.0.113.50:51820\nPersistentKeepalive = 25\n`);
    const init = await lab.cli(['mesh', 'init', file, '--name', 'admin', '--endpoint', `${h1.wanAddr}:51820`, '--json']);
    t.equal(init.code, 0, init.stderr);
    const meshKey = (JSON.parse(init.stdout) as { meshKey: string }).meshKey;
    const serial1 = lab.file('serial1.roster', '');
    copyFileSync(`${file}.roster`, serial1);
    let relay = await meshRelay(m, 0, meshKey);
    const adminProc = await lab.meshd(h1.ns, file, h1.iface);
    const admin: Member = { h: h1, file, addr: h1.mesh4, proc: adminProc };
    const b = await inviteAndJoin(m, admin, m.hosts[1], 'bob', t);
    const c = await inviteAndJoin(m, admin, m.hosts[2], 'carol', t);
    await allReach(m, [admin, b, c], t, 15_000, 'before');
    if (process.env.MESH_DEBUG) console.error((await relayMetrics(m, 0)).split('\n').filter((l) => /drops|refused|notices/.test(l) && !l.startsWith('#')).join('\n'));
    const serial = (await status(c.h)).mesh!.serial;

    // The bad rosters: signed by another key, an old serial, cut short, another mesh's.
    const { parseMeshPrivateKey, generateMeshKey } = await import('../../src/crypto/ed25519.js');
    const { checkRoster, signRoster } = await import('../../src/mesh/roster.js');
    const { newRoster } = await import('../../src/mesh/edit.js');
    const { parseMeshPublicKey } = await import('../../src/crypto/ed25519.js');
    const current = checkRoster(new Uint8Array(readFileSync(`${file}.roster`)), parseMeshPublicKey(meshKey)!, 0);
    if (!current.ok) throw new Error('the admin roster does not check');
    const rnd = (n: number) => new Uint8Array(randomBytes(n));
    const other = generateMeshKey(rnd);
    const bad = {
      'roster-bad-signature': signRoster({ ...current.roster, serial: current.roster.serial + 10 }, other.privateKey),
      'roster-stale': new Uint8Array(readFileSync(serial1)),
      'roster-malformed': current.roster.signed.subarray(0, current.roster.signed.length - 10),
      'roster-wrong-mesh': signRoster({ ...newRoster({ meshKey: other.publicKey, relays: [], stun: [], first: { name: 'x', publicKey: current.roster.members[1].publicKey } }, Date.now()), serial: current.roster.serial + 10 }, other.privateKey),
    };
    t.ok(parseMeshPrivateKey(readFileSync(file.replace(/\.conf$/, '.admin.key'), 'utf8')), 'the admin key file holds a key');
    const files = Object.entries(bad).map(([reason, bytes]) => {
      const f = lab.file(`${reason}.roster`, '');
      writeFileSync(f, bytes);
      return f;
    });
    // To the relay, as a member would send them.
    const bPriv = /^PrivateKey = (.+)$/m.exec(readFileSync(b.file, 'utf8'))![1];
    const metricsBefore = await relayMetrics(m, 0);
    const pub = await lab.exec(m.relayNs, process.execPath, [ROSTER_CLIENT, 'publish', relayUrlOf(0), m.cert, bPriv, meshKey, ...files], 30_000);
    t.equal(pub.code, 0, pub.stdout + pub.stderr);
    t.same((JSON.parse(pub.stdout) as { held: number[] }).held, [serial, serial, serial, serial], 'the relay keeps its roster after each');
    const metrics = await relayMetrics(m, 0);
    for (const reason of Object.keys(bad)) t.equal(promMetric(metrics, `meshd_relay_rosters_refused_total{reason="${reason}"}`) - promMetric(metricsBefore, `meshd_relay_rosters_refused_total{reason="${reason}"}`), 1, `the relay counted it: ${reason}`);
    // To a daemon (the way the admin CLI hands it one): each is refused and counted.
    const cache = `${c.file}.roster`;
    const good = readFileSync(cache);
    for (const [reason, bytes] of Object.entries(bad)) {
      writeFileSync(cache, bytes);
      const r = (await controlRequest(c.h.iface, { cmd: 'roster' })) as { ok: boolean; reason?: string };
      t.same([r.ok, r.reason], [false, reason], `the daemon refused it: ${reason}`);
    }
    writeFileSync(cache, good);
    const st = await status(c.h);
    t.equal(st.mesh!.serial, serial, 'the daemon still runs the same roster');
    for (const reason of Object.keys(bad)) t.equal(st.mesh!.rejected[reason], 1, `meshd status --json counts ${reason}`);
    t.equal(st.peers.length, 2, 'and still has its two members as peers');
    await allReach(m, [admin, b, c], t, 5_000, 'after the bad rosters');
    t.ok((await pingWithin(m, admin.h, '10.99.0.1', 5_000)) !== null, 'the stock WireGuard peer in [Peer] works beside the members');
    t.equal((await lab.exec(wgNs, 'ping', ['-c', '1', '-W', '2', admin.addr])).code, 0, 'both ways');

    // The relay restarts: it serves the newest roster from its state dir.
    relay.kill('SIGTERM');
    await exited(relay);
    relay = await meshRelay(m, 0, meshKey);
    const fetched = await lab.exec(m.relayNs, process.execPath, [ROSTER_CLIENT, 'fetch', relayUrlOf(0), m.cert, bPriv, meshKey], 30_000);
    t.same(JSON.parse(fetched.stdout), { serial, reason: null }, 'after a restart the relay serves the newest roster');

    // Every relay down; bob restarts: it runs the cached roster and reaches the admin host at its endpoint.
    relay.kill('SIGTERM');
    await exited(relay);
    b.proc.kill('SIGTERM');
    await exited(b.proc);
    b.proc = await lab.meshd(b.h.ns, b.file, b.h.iface);
    const bs = await status(b.h);
    t.equal(bs.mesh!.serial, serial, 'bob came up with its cached roster');
    t.equal(bs.peers.length, 2, 'and both members as peers');
    t.ok((await pingWithin(m, b.h, admin.addr, 10_000)) !== null, 'bob reaches the admin host (known endpoint) with every relay down');

    // Still no relay: a change on the admin host reaches bob from peer to peer (disco carries the
    // serial; the host that is ahead sends a delta).
    const flow = lab.exec(b.h.ns, 'ping', ['-c', '150', '-i', '0.1', '-W', '2', admin.addr], 60_000);
    const late = keyPair().pub;
    const add = await lab.cli(['mesh', 'add', file, '--name', 'late', '--public-key', late]);
    t.equal(add.code, 0, add.stderr);
    const at = Date.now();
    t.ok(await waitFor(async () => (await status(b.h)).peers.some((p) => p.publicKey === late), 10_000), `bob learned the new member from the admin host over the direct path (${Date.now() - at} ms)`);
    const bst = await status(b.h);
    t.equal(bst.mesh!.serial, serial + 1, 'and runs the new serial');
    t.ok(bst.counters['disco-roster-delta-received'] >= 1, 'from a disco roster-delta');
    await flow;
  });

  t.test('two relays: a removal made on one reaches the hosts of the other through a daemon on both', async (t) => {
    const lab = new Lab(t);
    const m = await meshLab(lab, ['eim', 'eim', 'eim']);
    const [h1, h2, h3] = m.hosts;
    const adminFile = hostConfig(m, h1, [0]);
    const init = await lab.cli(['mesh', 'init', adminFile, '--name', 'admin', '--json']);
    t.equal(init.code, 0, init.stderr);
    const meshKey = (JSON.parse(init.stdout) as { meshKey: string }).meshKey;
    const x = { pub: keyPair().pub };
    await meshRelay(m, 0, meshKey);
    await meshRelay(m, 1, meshKey);
    // With no daemon running on the admin host, the command publishes to the relays itself.
    for (const [name, pub] of [['bridge', h2.pub], ['far', h3.pub], ['laptop', x.pub]]) {
      const r = await lab.exec(h1.ns, process.execPath, [MESHD_BIN, 'mesh', 'add', adminFile, '--name', name, '--public-key', pub], 30_000);
      t.equal(r.code, 0, r.stderr);
      t.match(r.stdout, new RegExp(`added ${name} .*published to ${relayUrlOf(0).replace(/[./]/g, '\\$&')} \\(no daemon runs here\\)`), `mesh add ${name}: published by the command`);
    }
    // h1 (admin) only on relay 0; h2 on both; h3 only on relay 1. h2 and h3 start with no roster.
    await lab.meshd(h1.ns, adminFile, h1.iface);
    await lab.meshd(h2.ns, hostConfig(m, h2, [0, 1], meshKey), h2.iface);
    await lab.meshd(h3.ns, hostConfig(m, h3, [1], meshKey), h3.iface);
    const laptopOn = (h: NatHost) => async () => (await status(h)).peers.some((p) => p.publicKey === x.pub);
    t.ok(await waitFor(laptopOn(h3), 10_000), 'the far host got the roster (relay 1 had none; the bridge published it there)');
    t.ok((await pingWithin(m, h3, h2.mesh4, 10_000)) !== null, 'the far host reaches the bridge (their common relay is relay 1)');
    const rm = await lab.cli(['mesh', 'remove', adminFile, 'laptop']);
    t.equal(rm.code, 0, rm.stderr);
    const at = Date.now();
    t.ok(await waitFor(async () => !(await laptopOn(h3)()), 10_000), `the far host dropped the removed member (${Date.now() - at} ms)`);
    const serials = await Promise.all([h1, h2, h3].map(async (h) => (await status(h)).mesh!.serial));
    t.equal(new Set(serials).size, 1, `every host runs the same serial (${serials.join(', ')})`);
    t.ok(promMetric(await relayMetrics(m, 1), 'meshd_relay_rosters_accepted_total') >= 2, 'relay 1 took both rosters from the bridge');

    // A member with an expiry: every host drops it when it passes, with no new roster.
    const temp = keyPair().pub;
    const add = await lab.cli(['mesh', 'add', adminFile, '--name', 'temp', '--public-key', temp, '--expires', '4s']);
    t.equal(add.code, 0, add.stderr);
    const tempOn = (h: NatHost) => async () => (await status(h)).peers.some((p) => p.publicKey === temp);
    t.ok(await waitFor(tempOn(h3), 10_000), 'the member with an expiry arrives');
    const serialNow = (await status(h3)).mesh!.serial;
    t.ok(await waitFor(async () => !(await tempOn(h3)()) && !(await tempOn(h1)()), 10_000), 'and is dropped everywhere when it expires');
    const after = await status(h3);
    t.equal(after.mesh!.serial, serialNow, 'without a new roster');
    t.equal(after.mesh!.expiredMembers, 1, 'status counts it as expired');
  });
}
