// meshd-wireguard as wg-quick's userspace implementation (WG_QUICK_USERSPACE_IMPLEMENTATION): two
// namespaces configured only with wg-quick config files; ping both ways, a 100 MB TCP transfer with
// a matching checksum, `wg-quick save`, and `wg-quick down` leaving nothing behind; the same with a
// full-tunnel config on one side; and meshd-wireguard against Debian's wireguard-go and the
// upstream build (../shared/bin, when present) as the peer, with handshakes from each side.
import t, { type Test } from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { transfer, twoHosts, type Host, type TwoHosts } from '../helpers/two-hosts.js';
import { packageRoot } from '../../src/package-root.js';

const MESHD_WIREGUARD = join(packageRoot(), 'bin', 'meshd-wireguard.js');
const UPSTREAM = [process.env.MESHD_UPSTREAM_WIREGUARD_GO, join(packageRoot(), '..', 'shared', 'bin', 'wireguard-go-0.0.20250522')].find((p) => p && existsSync(p));
const why = labUnavailable(['ping', 'wg', 'wg-quick', 'wireguard-go', 'nft']);

function conf(h: TwoHosts, self: Host, other: Host, o: { fullTunnel?: boolean; saveConfig?: boolean; port?: number } = {}): string {
  const port = o.port ?? 51820;
  return h.lab.file(
    `${self.iface}.conf`,
    [
      '[Interface]',
      `PrivateKey = ${self.keys.priv}`,
      `Address = ${self.mesh4}/24, ${self.mesh6}/64`,
      `ListenPort = ${port}`,
      ...(o.saveConfig ? ['SaveConfig = true'] : []),
      '',
      '[Peer]',
      `PublicKey = ${other.keys.pub}`,
      `AllowedIPs = ${o.fullTunnel ? '0.0.0.0/0, ::/0' : `${other.mesh4}/32, ${other.mesh6}/128`}`,
      `Endpoint = ${other.underlay}:${port}`,
      '',
    ].join('\n'),
  );
}

async function wgQuick(lab: Lab, ns: string, verb: 'up' | 'down' | 'save', file: string, impl: string): Promise<{ code: number; out: string }> {
  const r = await lab.exec(ns, 'env', [`WG_QUICK_USERSPACE_IMPLEMENTATION=${impl}`, 'WG_ENDPOINT_RESOLUTION_RETRIES=1', 'wg-quick', verb, file], 60_000);
  return { code: r.code, out: r.stdout + r.stderr };
}

async function nothingLeft(t: Test, lab: Lab, x: Host, what: string): Promise<void> {
  t.ok(await waitFor(async () => (await lab.exec(x.ns, 'ip', ['link', 'show', x.iface])).code !== 0, 10_000), `${what}: the interface is gone`);
  t.ok(await waitFor(() => !existsSync(`/var/run/wireguard/${x.iface}.sock`), 10_000), `${what}: the UAPI socket is gone`);
  // The process removes its sockets as it stops, and exits a moment later.
  t.ok(await waitFor(async () => (await lab.run('pgrep', ['-f', `meshd-wireguard.js ${x.iface}$`])).stdout.trim() === '', 5000), `${what}: no meshd-wireguard process is left`);
  const rules = (await lab.exec(x.ns, 'ip', ['rule'])).stdout + (await lab.exec(x.ns, 'ip', ['-6', 'rule'])).stdout;
  t.notMatch(rules, /51820/, `${what}: no policy-routing rule is left`);
  const nft = (await lab.exec(x.ns, 'nft', ['list', 'ruleset'])).stdout;
  t.notMatch(nft, /wg-quick/, `${what}: no wg-quick nftables table is left`);
}

async function pingBoth(t: Test, lab: Lab, h: TwoHosts, what: string): Promise<void> {
  for (const [from, to] of [[h.a, h.b], [h.b, h.a]] as const) {
    const r = await lab.exec(from.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to.mesh4]);
    t.equal(r.code, 0, `${what}: ${from.ns} → ${to.mesh4}`);
    const r6 = await lab.exec(from.ns, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', to.mesh6]);
    t.equal(r6.code, 0, `${what}: ${from.ns} → ${to.mesh6}`);
  }
}

if (why) t.plan(0, why);
else {
  t.test('wg-quick drives meshd-wireguard on both sides: plain, save, down; then a full tunnel', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const fa = conf(h, h.a, h.b, { saveConfig: true });
    const fb = conf(h, h.b, h.a);
    for (const [x, f] of [[h.a, fa], [h.b, fb]] as const) {
      const up = await wgQuick(lab, x.ns, 'up', f, MESHD_WIREGUARD);
      t.equal(up.code, 0, `wg-quick up on ${x.ns}\n${up.out}`);
      t.match(up.out, new RegExp(`\\[#\\] ${MESHD_WIREGUARD.replace(/[.]/g, '\\.')} ${x.iface}`), 'wg-quick ran meshd-wireguard');
    }
    await pingBoth(t, lab, h, 'plain config');
    const r = await transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, 100 * 1024 * 1024);
    t.match(r.sent, /^104857600 [0-9a-f]{64}$/, `sent 100 MB ${r.sendErr}`);
    t.equal(r.received, r.sent, '100 MB arrived with the same SHA-256');
    const show = await lab.exec(h.a.ns, 'wg', ['show', h.a.iface, 'latest-handshakes']);
    t.match(show.stdout, new RegExp(`^${h.b.keys.pub.replace(/[+/]/g, '\\$&')}\\t[1-9]\\d+$`, 'm'), 'wg show: a latest handshake');

    const save = await wgQuick(lab, h.a.ns, 'save', fa, MESHD_WIREGUARD);
    t.equal(save.code, 0, `wg-quick save ${save.out}`);
    const saved = readFileSync(fa, 'utf8');
    t.match(saved, new RegExp(`^PrivateKey = ${h.a.keys.priv.replace(/[+/]/g, '\\$&')}$`, 'm'), 'saved: the private key meshd holds');
    t.match(saved, /^ListenPort = 51820$/m, 'saved: the port');
    t.match(saved, new RegExp(`^PublicKey = ${h.b.keys.pub.replace(/[+/]/g, '\\$&')}$`, 'm'), 'saved: the peer');
    t.match(saved, new RegExp(`^AllowedIPs = ${h.b.mesh4}/32, ${h.b.mesh6}/128$`, 'm'), 'saved: its allowed IPs');
    t.match(saved, new RegExp(`^Endpoint = ${h.b.underlay}:51820$`, 'm'), 'saved: its endpoint');
    t.match(saved, /^Address = 10\.77\.0\.1\/24/m, 'saved: the address wg-quick set');

    for (const [x, f] of [[h.a, fa], [h.b, fb]] as const) {
      const down = await wgQuick(lab, x.ns, 'down', f, MESHD_WIREGUARD);
      t.equal(down.code, 0, `wg-quick down on ${x.ns}\n${down.out}`);
      await nothingLeft(t, lab, x, `after wg-quick down on ${x.ns}`);
    }

    // Full tunnel on a: everything a sends goes through b, including an address only b has.
    await lab.exec(h.b.ns, 'ip', ['addr', 'add', '198.51.100.7/32', 'dev', 'lo']);
    const fullA = conf(h, h.a, h.b, { fullTunnel: true });
    const fb2 = conf(h, h.b, h.a);
    // b first: with ::/0 in its AllowedIPs, a's own router solicitation at link-up starts a handshake
    // at once, and one to a peer that is not up yet is retried only after REKEY_TIMEOUT (5 s), as in
    // every WireGuard implementation.
    for (const [x, f] of [[h.b, fb2], [h.a, fullA]] as const) {
      const up = await wgQuick(lab, x.ns, 'up', f, MESHD_WIREGUARD);
      t.equal(up.code, 0, `full tunnel: wg-quick up on ${x.ns}\n${up.out}`);
    }
    t.match((await lab.exec(h.a.ns, 'ip', ['rule'])).stdout, /not from all fwmark 0xca6c lookup 51820/, 'wg-quick set up its fwmark rules');
    t.match((await lab.exec(h.a.ns, 'wg', ['show', h.a.iface, 'fwmark'])).stdout, /0xca6c/, 'and meshd-wireguard marks its socket');
    await pingBoth(t, lab, h, 'full tunnel');
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', '198.51.100.7'])).code, 0, 'an address only b has is reached through the tunnel');
    const r2 = await transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, 100 * 1024 * 1024, 5202);
    t.equal(r2.received, r2.sent, 'full tunnel: 100 MB with the same SHA-256');
    for (const [x, f] of [[h.a, fullA], [h.b, fb2]] as const) {
      const down = await wgQuick(lab, x.ns, 'down', f, MESHD_WIREGUARD);
      t.equal(down.code, 0, `full tunnel: wg-quick down on ${x.ns}\n${down.out}`);
      await nothingLeft(t, lab, x, `full tunnel, after wg-quick down on ${x.ns}`);
    }
  });

  const peers: [string, string][] = [["Debian's wireguard-go", 'wireguard-go'], ...(UPSTREAM ? ([['upstream wireguard-go 0.0.20250522', UPSTREAM]] as [string, string][]) : [])];
  for (const [name, impl] of peers) {
    t.test(`meshd-wireguard and ${name} as peers, handshakes from each side`, async (t) => {
      const lab = new Lab(t);
      const h = await twoHosts(lab);
      const fa = conf(h, h.a, h.b);
      const fb = conf(h, h.b, h.a);
      for (const first of ['meshd-wireguard', name]) {
        t.equal((await wgQuick(lab, h.a.ns, 'up', fa, MESHD_WIREGUARD)).code, 0, 'a: meshd-wireguard up');
        t.equal((await wgQuick(lab, h.b.ns, 'up', fb, impl)).code, 0, `b: ${name} up`);
        const [from, to] = first === 'meshd-wireguard' ? [h.a, h.b] : [h.b, h.a];
        const r = await lab.exec(from.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to.mesh4]);
        t.equal(r.code, 0, `${first} initiates: ping ${from.mesh4} → ${to.mesh4}`);
        const back = await lab.exec(to.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', from.mesh4]);
        t.equal(back.code, 0, 'and back');
        const u = await lab.exec(h.a.ns, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '2', h.b.mesh6]);
        t.equal(u.code, 0, 'IPv6 inside');
        t.equal((await wgQuick(lab, h.a.ns, 'down', fa, MESHD_WIREGUARD)).code, 0, 'a down');
        t.equal((await wgQuick(lab, h.b.ns, 'down', fb, impl)).code, 0, 'b down');
        await nothingLeft(t, lab, h.a, `${first} first: a`);
      }
    });
  }
}
