// NAT traversal across nftables NAT routers in network namespaces: hosts configured only with each
// other's keys and a relay find a direct path through endpoint-independent NATs, stay on the relay
// when no direct path can exist, fall back and recover when the path breaks, and survive rebinding.
import t, { type Test } from 'tap';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { transfer } from '../helpers/two-hosts.js';
import { cutUdpBetweenRouters, natConfig, natWorld, relayArgs, setNat, type NatKind, type NatWorld } from '../../src/lab/nat-world.js';

const why = labUnavailable(['nft', 'conntrack', 'openssl', 'ping']);

/** `extra`: more relay arguments; `conf`: more [Interface] lines for both hosts. */
async function world(t: Test, kinds: [NatKind, NatKind], extra: string[] = [], conf: string[] = []): Promise<NatWorld & { upAt: number }> {
  const lab = new Lab(t);
  const w = await natWorld(lab, kinds);
  await lab.relay(w.relayNs, relayArgs(w, extra));
  await lab.meshd(w.a.ns, lab.file('a.conf', natConfig(w, w.a, w.b, conf)), w.a.iface);
  await lab.meshd(w.b.ns, lab.file('b.conf', natConfig(w, w.b, w.a, conf)), w.b.iface);
  return { ...w, upAt: Date.now() };
}

async function status(w: NatWorld, iface: string) {
  return JSON.parse((await w.lab.cli(['status', iface, '--json'])).stdout);
}

async function pathKind(w: NatWorld, iface = w.a.iface): Promise<string> {
  return (await status(w, iface)).peers[0].path.kind;
}

/** Pings over the mesh; returns how many of `n` were answered. */
async function meshPings(w: NatWorld, n: number, interval = 0.2): Promise<number> {
  const r = await w.lab.exec(w.a.ns, 'ping', ['-c', String(n), '-i', String(interval), '-W', '2', w.b.mesh4], 120_000);
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

if (why) t.plan(0, why);
else {
  t.test('both NATs endpoint-independent: a direct path without any Endpoint configured', async (t) => {
    const w = await world(t, ['eim', 'eim']);
    const r = await w.lab.cli(['ping', 'bob', '-i', w.a.iface, '--until-direct', '-c', '30']);
    const elapsed = Date.now() - w.upAt;
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /pong from bob via 203\.0\.113\.2:51820 in \d+ms/, 'a direct reply, from B\'s router\'s public address');
    t.comment(`time from both daemons up to the first direct reply: ${elapsed} ms`);
    t.equal(await meshPings(w, 5), 5, 'mesh traffic flows');
    const s = await status(w, w.a.iface);
    t.same(s.peers[0].path, { kind: 'direct', endpoint: '203.0.113.2:51820' });
    t.equal(s.peers[0].name, 'bob');
    t.ok(s.peers[0].rttMs !== null && s.peers[0].rttMs < 100, `rtt ${s.peers[0].rttMs} ms`);
    t.equal(s.natMappingVariesByDestination, false);
    t.ok(s.endpoints.some((e: { endpoint: string; source: string }) => e.endpoint === '203.0.113.1:51820' && e.source.startsWith('stun')), 'own STUN-mapped endpoint listed');
    t.equal(s.relays[0].state, 'connected');
    for (const k of ['publicKey', 'listenPort', 'endpoints', 'relays', 'natMappingVariesByDestination']) t.ok(k in s, `status has ${k}`);
    for (const k of ['publicKey', 'name', 'path', 'latestHandshake', 'rxBytes', 'txBytes', 'rttMs']) t.ok(k in s.peers[0], `peer status has ${k}`);
  });

  t.test('one side symmetric, birthday probing off: the relay carries the traffic, and keeps it up', async (t) => {
    // (With probing on, the default, this pair finds a direct path: test/integration/birthday.test.ts.)
    const w = await world(t, ['eim', 'symmetric'], [], ['HardNatProbes = off']);
    t.equal(await meshPings(w, 20, 0.5), 20, 'every ping over 10 s answered');
    t.equal(await pathKind(w), 'relay');
    const human = await w.lab.cli(['status', w.a.iface]);
    t.match(human.stdout, /path: relay wss:\/\/203\.0\.113\.10:8443\/ \(/, 'status says the peer is relayed, and why');
    const nc = JSON.parse((await w.lab.cli(['netcheck', '-i', w.b.iface, '--json'])).stdout);
    t.equal(nc.natMappingVariesByDestination, true, 'netcheck on the symmetric side sees the mapping vary');
    t.equal(nc.udp, true);
    const direct = await w.lab.cli(['ping', 'alice', '-i', w.b.iface, '--until-direct', '-c', '3']);
    t.equal(direct.code, 2, 'ping --until-direct gives up: no direct path can exist');
    t.match(direct.stdout, /via relay/);
  });

  t.test('both symmetric: relay', async (t) => {
    const w = await world(t, ['symmetric', 'symmetric']);
    t.equal(await meshPings(w, 10), 10);
    t.equal(await pathKind(w), 'relay');
  });

  t.test('UDP blocked on one side: relay over TLS', async (t) => {
    const w = await world(t, ['udp-blocked', 'eim']);
    t.equal(await meshPings(w, 10), 10);
    t.equal(await pathKind(w), 'relay');
    const nc = JSON.parse((await w.lab.cli(['netcheck', '-i', w.a.iface, '--json'])).stdout);
    t.equal(nc.udp, false, 'netcheck reports UDP unreachable');
    t.equal(nc.relays[0].state, 'connected');
    t.ok(nc.relays[0].url.startsWith('wss://'), 'the relay is reached over TLS');
  });

  t.test('direct path lost mid-transfer: the transfer completes via the relay, then the path returns', async (t) => {
    const w = await world(t, ['eim', 'eim']);
    t.equal((await w.lab.cli(['ping', 'bob', '-i', w.a.iface, '--until-direct', '-c', '30'])).code, 0, 'direct first');
    const bytes = 80 * 1024 * 1024;
    const running = transfer(w.lab, w.a.ns, w.b.ns, w.b.mesh4, bytes);
    await sleep(1000);
    await cutUdpBetweenRouters(w, true);
    t.ok(await waitFor(async () => (await pathKind(w)) === 'relay', 15_000), 'traffic moved to the relay');
    const r = await running;
    t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
    t.equal(r.received, r.sent, 'the TCP transfer completed with the same SHA-256');
    await cutUdpBetweenRouters(w, false);
    t.ok(await waitFor(async () => (await meshPings(w, 1)) === 1 && (await pathKind(w)) === 'direct', 30_000), 'direct again once UDP is back');
  });

  t.test('NAT rebinding: traffic resumes on the new mapping', async (t) => {
    const w = await world(t, ['eim', 'eim']);
    t.equal((await w.lab.cli(['ping', 'bob', '-i', w.a.iface, '--until-direct', '-c', '30'])).code, 0, 'direct first');
    const pinging = w.lab.exec(w.a.ns, 'ping', ['-c', '100', '-i', '0.2', '-W', '1', w.b.mesh4], 60_000);
    await sleep(2000);
    await setNat(w.lab, w.a, 'eim', '40000-40999'); // flush conntrack and force a new public port
    const out = (await pinging).stdout;
    const seqs = [...out.matchAll(/icmp_seq=(\d+) ttl/g)].map((m) => Number(m[1]));
    t.ok(seqs.filter((s) => s > 80).length >= 18, `the last pings are answered (${seqs.filter((s) => s > 80).length}/20)`);
    const ct = await w.lab.exec(w.a.router, 'conntrack', ['-L', '-p', 'udp']);
    t.match(ct.stdout + ct.stderr, /sport=51820 .*dport=4\d{4}|dport=4\d{4}/, 'the router uses a new mapping');
    t.ok(await waitFor(async () => {
      const s = await status(w, w.b.iface);
      return /^203\.0\.113\.1:4\d{4}$/.test(s.peers[0].endpoint ?? '');
    }, 30_000), 'B follows A to its new public port');
  });

  t.test('STUN against an independent server (coturn) gives the right mapped address', { skip: labUnavailable(['turnserver']) ?? false }, async (t) => {
    const lab = new Lab(t);
    const w = await natWorld(lab, ['eim', 'eim']);
    lab.spawn(w.relayNs, 'turnserver', ['-n', '--stun-only', '--no-cli', '-L', w.relayAddrs[0], '-L', w.relayAddrs[1], '-p', '3479', '--no-tls', '--no-dtls', '--log-file', 'stdout']);
    await lab.relay(w.relayNs, ['--listen', `${w.relayAddrs[0]}:8443`, '--no-stun', '--tls-cert', w.cert, '--tls-key', w.key]);
    const conf = natConfig(w, w.a, w.b).replace(/^STUN = .*$/m, `STUN = ${w.relayAddrs[0]}:3479, ${w.relayAddrs[1]}:3479`);
    await lab.meshd(w.a.ns, lab.file('a.conf', conf), w.a.iface);
    let nc: { stun: { server: string; mapped: string | null }[]; natMappingVariesByDestination: boolean | null } | null = null;
    t.ok(await waitFor(async () => {
      nc = JSON.parse((await lab.cli(['netcheck', '-i', w.a.iface, '--json'])).stdout);
      return nc!.stun.every((s) => s.mapped !== null);
    }, 15_000), 'coturn answered on both addresses');
    t.same(nc!.stun.map((s) => s.mapped), ['203.0.113.1:51820', '203.0.113.1:51820'], 'the router\'s public address and the kept port');
    t.equal(nc!.natMappingVariesByDestination, false);
  });
}
