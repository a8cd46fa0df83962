// A wg-quick full-tunnel config (AllowedIPs = 0.0.0.0/0, ::/0) runs unchanged: everything goes
// through the tunnel by policy routing, the tunnel's own packets do not loop, and the rules go
// away on down — and after a kill -9, at the next start. Behind a symmetric NAT, birthday probing's
// sockets reach the peer outside the tunnel too.
import t, { type Test } from 'tap';
import type { NatKind, NatWorld } from '../../src/lab/nat-world.js';
import { exited, Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping']);

if (why) t.plan(0, why);
else {
  t.test('AllowedIPs 0.0.0.0/0 and ::/0 route everything through the tunnel', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    // Addresses that exist only behind B: reachable from A only through the tunnel.
    await lab.exec(h.b.ns, 'ip', ['addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
    await lab.exec(h.b.ns, 'ip', ['-6', 'addr', 'add', '2001:db8:ffff::1/128', 'dev', 'lo']);
    const aConf = lab.file(
      'a.conf',
      `[Interface]\nPrivateKey = ${h.a.keys.priv}\nAddress = ${h.a.mesh4}/24, ${h.a.mesh6}/64\n\n[Peer]\nPublicKey = ${h.b.keys.pub}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = ${h.b.underlay}:51820\n`,
    );
    const bConf = lab.file('b.conf', `[Interface]\nPrivateKey = ${h.b.keys.priv}\nAddress = ${h.b.mesh4}/24, ${h.b.mesh6}/64\nListenPort = 51820\n\n[Peer]\nPublicKey = ${h.a.keys.pub}\nAllowedIPs = ${h.a.mesh4}/32, ${h.a.mesh6}/128\n`);
    await lab.meshd(h.b.ns, bConf, h.b.iface);
    let pa = await lab.meshd(h.a.ns, aConf, h.a.iface);

    const route = await lab.exec(h.a.ns, 'ip', ['route', 'get', '198.51.100.1']);
    t.match(route.stdout, new RegExp(`dev ${h.a.iface} table 51820`), 'the world routes into the tunnel');
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '198.51.100.1'])).code, 0, 'IPv4 beyond B answers through the tunnel');
    t.equal((await lab.exec(h.a.ns, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '3', '2001:db8:ffff::1'])).code, 0, 'IPv6 too');
    const sB = JSON.parse((await lab.cli(['status', h.b.iface, '--json'])).stdout);
    t.ok(sB.peers[0].rxBytes > 500, 'B received it over WireGuard');
    t.same(JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout).peers[0].path, { kind: 'direct', endpoint: '192.0.2.2:51820' }, 'and the tunnel itself did not loop');

    t.equal((await lab.cli(['down', h.a.iface])).code, 0);
    await exited(pa);
    t.equal((await lab.exec(h.a.ns, 'ip', ['rule', 'show', 'table', '51820'])).stdout.trim(), '', 'no IPv4 rule left after down');
    t.equal((await lab.exec(h.a.ns, 'ip', ['-6', 'rule', 'show', 'table', '51820'])).stdout.trim(), '', 'no IPv6 rule left');
    t.notMatch((await lab.exec(h.a.ns, 'ip', ['rule'])).stdout, /sport|suppress_prefixlength/, 'nor the bypass rules');

    pa = await lab.meshd(h.a.ns, aConf, h.a.iface);
    pa.kill('SIGKILL');
    await exited(pa);
    t.match((await lab.exec(h.a.ns, 'ip', ['rule', 'show', 'table', '51820'])).stdout, /51820/, 'kill -9 leaves a rule pointing at an empty table');
    pa = await lab.meshd(h.a.ns, aConf, h.a.iface);
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '198.51.100.1'])).code, 0, 'the next start works');
    t.equal((await lab.exec(h.a.ns, 'ip', ['rule', 'show', 'table', '51820'])).stdout.trim().split('\n').length, 1, 'with exactly one rule for its table (the stale one was removed)');
    t.equal((await lab.cli(['down', h.a.iface])).code, 0);
    await exited(pa);
    t.equal((await lab.exec(h.a.ns, 'ip', ['rule', 'show', 'table', '51820'])).stdout.trim(), '', 'and nothing is left after down');
    t.notMatch((await lab.exec(h.a.ns, 'ip', ['rule'])).stdout, /sport|suppress_prefixlength/, 'nor the bypass rules the killed one left');
  });
}

/**
 * The NAT lab with a relay, `full`'s side sending everything through the tunnel (AllowedIPs
 * 0.0.0.0/0) and 198.51.100.1 behind the other side: reachable only through the tunnel.
 */
async function natFullTunnel(t: Test, kinds: [NatKind, NatKind], full: 'a' | 'b', before?: (w: NatWorld) => Promise<void>) {
  const { natWorld, natConfig, relayArgs } = await import('../../src/lab/nat-world.js');
  const lab = new Lab(t);
  const w = await natWorld(lab, kinds);
  await before?.(w);
  await lab.relay(w.relayNs, relayArgs(w));
  const [self, other] = full === 'a' ? [w.a, w.b] : [w.b, w.a];
  await lab.exec(other.ns, 'ip', ['addr', 'add', '198.51.100.1/32', 'dev', 'lo']);
  const conf = natConfig(w, self, other).replace(`AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`, 'AllowedIPs = 0.0.0.0/0');
  const fullDaemon = await lab.meshd(self.ns, lab.file(`${self.name}.conf`, conf), self.iface);
  const otherDaemon = await lab.meshd(other.ns, lab.file(`${other.name}.conf`, natConfig(w, other, self)), other.iface);
  const status = async (iface: string) =>
    JSON.parse((await lab.cli(['status', iface, '--json'])).stdout) as {
      relays: { state: string }[];
      peers: { path: { kind: string; via?: string }; birthday: unknown }[];
      endpoints: { endpoint: string }[];
      natMappingVariesByDestination: boolean | null;
    };
  /** Both daemons' paths, birthday states and disco log lines, for a failure's diagnostics. */
  const explain = async () => {
    const lines = (d: { log: string[] }) => d.log.join('').split('\n').filter((l) => l.includes('"disco"')).join('\n');
    const one = async (name: string, iface: string, d: { log: string[] }) => {
      const s = await status(iface);
      return `${name}: ${JSON.stringify(s.peers[0].path)} ${JSON.stringify(s.peers[0].birthday)} announced ${s.endpoints.map((e) => e.endpoint).join(', ')}\n${lines(d)}`;
    };
    return `${await one(`${self.name} (full tunnel)`, self.iface, fullDaemon)}\n${await one(other.name, other.iface, otherDaemon)}`;
  };
  return { lab, w, self, fullDaemon, status, explain };
}

if (!why) {
  t.test('a full tunnel whose only path is a relay reached through the default route', { skip: labUnavailable(['nft', 'conntrack', 'openssl']) ?? false }, async (t) => {
    const { lab, self, status } = await natFullTunnel(t, ['udp-blocked', 'eim'], 'a');
    const rules = (await lab.exec(self.ns, 'ip', ['rule'])).stdout;
    t.match(rules, /to 203\.0\.113\.10 lookup main/, 'the relay keeps using the main table');
    t.equal((await lab.exec(self.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', '198.51.100.1'])).code, 0, 'the world is reached through the tunnel, carried by the relay');
    const s = await status(self.iface);
    t.equal(s.relays[0].state, 'connected', 'the relay connection did not loop into the tunnel');
    t.equal(s.peers[0].path.kind, 'relay');
  });
}

if (!why) {
  t.test('a full tunnel behind a symmetric NAT: birthday probing still finds the direct path', { skip: labUnavailable(['nft', 'conntrack', 'openssl']) ?? false }, async (t) => {
    // B, the hard side, sends everything through the tunnel: its many probing sockets (ephemeral
    // ports, unlike the data socket's) must still reach A's NAT outside it.
    const { lab, w, self, fullDaemon, status, explain } = await natFullTunnel(t, ['eim', 'symmetric'], 'b');
    // The first attempt, or its quick retry (birthday.test.ts: 1.8 % of attempts meet nobody).
    const met = await waitFor(async () => {
      await lab.exec(self.ns, 'ping', ['-c', '1', '-W', '1', '198.51.100.1']);
      return (await status(self.iface)).peers[0].path.via === 'birthday probing' && (await status(w.a.iface)).peers[0].path.via === 'birthday probing';
    }, 35_000, 200);
    t.ok(met, `both sides report a direct path found by birthday probing${met ? '' : `\n${await explain()}`}`);
    const rules = (await lab.exec(self.ns, 'ip', ['rule'])).stdout;
    const birthday = (await status(self.iface)).peers[0].birthday as { sockets: number };
    if (birthday.sockets > 0) t.match(rules, /to \S+ ipproto udp dport \d+ lookup main/, 'the probed endpoint keeps using the main table');
    // One of A's probes drew the mapping B's data socket made towards A (one meeting in ~257).
    else t.match(rules, /ipproto udp sport 51820 lookup main/, "met on the data socket: its own bypass carries the path");
    t.equal((await lab.exec(self.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', '198.51.100.1'])).code, 0, 'the world beyond A answers through the tunnel');
    t.equal((await status(self.iface)).peers[0].path.kind, 'direct', 'on the direct path');
    t.equal((await lab.cli(['down', self.iface])).code, 0);
    await exited(fullDaemon);
    t.notMatch((await lab.exec(self.ns, 'ip', ['rule'])).stdout, /dport|sport|suppress_prefixlength|51820/, 'no rule left after down');
  });

  t.test("a full tunnel whose STUN mappings agree by chance: no second socket asks STUN through the tunnel", { skip: labUnavailable(['nft', 'conntrack', 'openssl']) ?? false }, async (t) => {
    // B's data socket's two STUN mappings agree (birthday.test.ts "agree by chance"), which asks for
    // a second opinion from a fresh socket. But B routes everything through the tunnel, and one STUN
    // server is not a relay address: a fresh socket's requests would enter the tunnel and come back
    // with the far side's mapping. So no fresh socket asks, and the data socket's verdict stands.
    const { setPortBlockNat } = await import('../../src/lab/nat-world.js');
    const { lab, w, self, status } = await natFullTunnel(t, ['eim', 'symmetric'], 'b', async (w) => {
      await setPortBlockNat(w.lab, w.b, { first: 40000, size: 1024, pin: { stun: [w.relayAddrs[0], w.relayAddrs[1]], stunPorts: [40000, 40000], peerWan: w.a.wanAddr, sport: 51820 } });
      const rules = `table inet stunsockets {\n  chain out {\n    type filter hook output priority 0;\n    udp dport 3478 udp sport != 51820 counter;\n  }\n}\n`;
      const r = await w.lab.exec(w.b.ns, 'nft', ['-f', w.lab.file('b-stun.nft', rules)]);
      if (r.code !== 0) throw new Error(`nft on B: ${r.stderr}`);
    });
    const told = await waitFor(async () => (await status(self.iface)).natMappingVariesByDestination !== null, 15_000, 200);
    t.ok(told, 'B has a verdict from its data socket');
    // A second opinion starts right after the refresh that needs it, and takes at most a STUN timeout.
    await new Promise((r) => setTimeout(r, 4000));
    const counted = (await lab.exec(self.ns, 'nft', ['list', 'chain', 'inet', 'stunsockets', 'out'])).stdout;
    t.match(counted, /counter packets 0 /, 'no STUN request from any socket but the data socket');
    t.equal((await status(self.iface)).natMappingVariesByDestination, false, "the data socket's verdict stands");
    t.equal((await lab.exec(self.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', '198.51.100.1'])).code, 0, 'the tunnel carries the world');
    t.equal((await lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '3', self.mesh4])).code, 0, 'and A reaches B');
  });
}
