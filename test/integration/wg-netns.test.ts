// The steps of WireGuard's own userspace conformance test (wireguard-go's tests/netns.sh, itself the
// kernel's netns.sh), written anew for meshd-wireguard: interfaces created in one namespace and moved
// to two others while the processes and their UDP sockets stay behind ("the netns trick");
// IPv4 and IPv6 outer transport; normal and ~34 KB MTUs; TCP and UDP iperf3; packet counters;
// roaming to a new source address and port; the crypto-routing source check with a more specific
// peer; NAT with a 1 s persistent keepalive; large UAPI transactions; deleting a moved interface
// ends its process; source addresses that are sticky (a reply leaves from the address the peer
// wrote to) but not too sticky (a removed address is given up).
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { packageRoot } from '../../src/package-root.js';
import { controlRequest } from '../../src/control/control.js';
import type { DaemonStatus } from '../../src/daemon/status.js';

const BIN = join(packageRoot(), 'bin', 'meshd-wireguard.js');
const UDP_ECHO = join(packageRoot(), 'dist', 'test', 'helpers', 'udp-echo.js');
const why = labUnavailable(['ping', 'wg', 'iperf3', 'nft', 'conntrack']);
const BYTES = process.env.WG_NETNS_BYTES ?? '64M';

if (why) t.plan(0, why);
else {
  t.test('the netns suite\'s steps against meshd-wireguard', async (t) => {
    const lab = new Lab(t);
    const ns0 = await lab.ns('n0');
    const ns1 = await lab.ns('n1');
    const ns2 = await lab.ns('n2');
    const wg1 = `${lab.id}w1`;
    const wg2 = `${lab.id}w2`;
    const must = async (ns: string, cmd: string, args: string[], what: string, ms?: number) => {
      const r = await lab.exec(ns, cmd, args, ms);
      t.equal(r.code, 0, `${what}${r.code ? `: ${r.stderr || r.stdout}` : ''}`);
      return r.stdout;
    };
    const k1 = keyPair();
    const k2 = keyPair();
    const psk = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 255)).toString('base64');
    const kf = (k: string) => lab.file(`k${Math.random().toString(36).slice(2)}`, `${k}\n`);
    const status = (iface: string) => controlRequest(iface, { cmd: 'status' }) as Promise<DaemonStatus>;

    const start = async (ns: string, iface: string, moveTo: string | null) => {
      const r = await lab.exec(ns, BIN, [iface]);
      t.equal(r.code, 0, `meshd-wireguard ${iface} returned once it was up ${r.stderr}`);
      t.ok(existsSync(`/var/run/wireguard/${iface}.sock`), 'and its UAPI socket exists');
      if (moveTo) await must(ns, 'ip', ['link', 'set', iface, 'netns', moveTo], `${iface} moved to another namespace`);
    };
    const configure = async (a: string, b: string) => {
      await must(ns1, 'ip', ['addr', 'add', '192.168.241.1/24', 'dev', a], 'address');
      await must(ns1, 'ip', ['addr', 'add', 'fd00::1/24', 'dev', a], 'address');
      await must(ns2, 'ip', ['addr', 'add', '192.168.241.2/24', 'dev', b], 'address');
      await must(ns2, 'ip', ['addr', 'add', 'fd00::2/24', 'dev', b], 'address');
      await must(ns0, 'wg', ['set', a, 'private-key', kf(k1.priv), 'listen-port', '10000', 'peer', k2.pub, 'preshared-key', kf(psk), 'allowed-ips', '192.168.241.2/32,fd00::2/128'], 'wg set wg1');
      await must(ns0, 'wg', ['set', b, 'private-key', kf(k2.priv), 'listen-port', '20000', 'peer', k1.pub, 'preshared-key', kf(psk), 'allowed-ips', '192.168.241.1/32,fd00::1/128'], 'wg set wg2');
      await must(ns1, 'ip', ['link', 'set', 'up', 'dev', a], 'up');
      await must(ns2, 'ip', ['link', 'set', 'up', 'dev', b], 'up');
    };
    const iperf = async (server: string, client: string, addr: string, udp: boolean, what: string) => {
      await lab.exec(server, 'iperf3', ['-s', '-1', '-D', '-B', addr]);
      await waitFor(async () => (await lab.exec(server, 'ss', ['-tlnH', 'sport = 5201'])).stdout.includes('5201'), 5000);
      const r = await lab.exec(client, 'iperf3', ['-Z', '-n', BYTES, ...(udp ? ['-b', '0', '-u'] : []), '-c', addr, '-J'], 300_000);
      t.equal(r.code, 0, `${what}${r.code ? `: ${r.stderr || r.stdout.slice(0, 300)}` : ''}`);
    };
    const tests = async (label: string, bigPing: boolean) => {
      for (const [from, to] of [[ns2, '192.168.241.1'], [ns1, '192.168.241.2'], [ns2, 'fd00::1'], [ns1, 'fd00::2']] as const) {
        await must(from, 'ping', ['-c', '10', '-f', '-W', '1', ...(bigPing ? ['-s', '30000'] : []), to], `${label}: ping ${to}`);
      }
      await iperf(ns2, ns1, '192.168.241.2', false, `${label}: TCP over IPv4`);
      await iperf(ns1, ns2, 'fd00::1', false, `${label}: TCP over IPv6`);
      await iperf(ns1, ns2, '192.168.241.1', true, `${label}: UDP over IPv4`);
      await iperf(ns2, ns1, 'fd00::2', true, `${label}: UDP over IPv6`);
    };

    await must(ns0, 'ip', ['link', 'set', 'up', 'dev', 'lo'], 'lo up');
    await start(ns0, wg1, ns1);
    await start(ns0, wg2, ns2);
    await configure(wg1, wg2);
    const origMtu = Number(/mtu (\d+)/.exec(await must(ns1, 'ip', ['link', 'show', 'dev', wg1], 'mtu'))?.[1]);
    const bigMtu = 34816 - 1500 + origMtu;
    const setMtus = async (mtu: number) => {
      await must(ns1, 'ip', ['link', 'set', wg1, 'mtu', String(mtu)], `${wg1} MTU ${mtu}`);
      await must(ns2, 'ip', ['link', 'set', wg2, 'mtu', String(mtu)], `${wg2} MTU ${mtu}`);
    };
    /** The suite's tests at the normal MTU, then at ~34 KB, and back. */
    const bothMtus = async (label: string) => {
      await tests(label, false);
      await setMtus(bigMtu);
      await tests(`${label}, MTU ${bigMtu}`, true);
      await setMtus(origMtu);
    };

    // IPv4 outer transport.
    await must(ns0, 'wg', ['set', wg1, 'peer', k2.pub, 'endpoint', '127.0.0.1:20000'], 'endpoint');
    await must(ns0, 'wg', ['set', wg2, 'peer', k1.pub, 'endpoint', '127.0.0.1:10000'], 'endpoint');
    await must(ns2, 'ping', ['-c', '10', '-f', '-W', '1', '192.168.241.1'], 'ping before the counters');
    const stats = await must(ns2, 'ip', ['-stats', 'link', 'show', 'dev', wg2], 'stats');
    const lines = stats.trim().split('\n');
    const rx = Number(lines[3].trim().split(/\s+/)[0]);
    const tx = Number(lines[5].trim().split(/\s+/)[0]);
    t.ok(rx >= 840 && tx >= 880 && rx < 2500 && tx < 2500, `the interface's counters count what moved (rx ${rx}, tx ${tx})`);
    await bothMtus('IPv4 outer');

    // IPv6 outer transport.
    await must(ns0, 'wg', ['set', wg1, 'peer', k2.pub, 'endpoint', '[::1]:20000'], 'endpoint');
    await must(ns0, 'wg', ['set', wg2, 'peer', k1.pub, 'endpoint', '[::1]:10000'], 'endpoint');
    await bothMtus('IPv6 outer');

    // Roaming: a new source address and port, over IPv4 then IPv6.
    await must(ns0, 'ip', ['-4', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'], 'old source address gone');
    await must(ns0, 'ip', ['-4', 'addr', 'add', '127.212.121.99/8', 'dev', 'lo'], 'new source address');
    await must(ns0, 'wg', ['set', wg1, 'listen-port', '9999'], 'new port');
    await must(ns0, 'wg', ['set', wg1, 'peer', k2.pub, 'endpoint', '127.0.0.1:20000'], 'endpoint');
    await must(ns1, 'ping', ['-6', '-W', '1', '-c', '1', 'fd00::2'], 'roaming over IPv4: ping');
    t.equal((await must(ns0, 'wg', ['show', wg2, 'endpoints'], 'endpoints')).trim(), `${k1.pub}\t127.212.121.99:9999`, 'the peer follows to the new address and port');
    await must(ns0, 'wg', ['set', wg1, 'listen-port', '9998'], 'new port');
    await must(ns0, 'wg', ['set', wg1, 'peer', k2.pub, 'endpoint', '[::1]:20000'], 'endpoint');
    await must(ns1, 'ping', ['-W', '1', '-c', '1', '192.168.241.2'], 'roaming over IPv6: ping');
    t.equal((await must(ns0, 'wg', ['show', wg2, 'endpoints'], 'endpoints')).trim(), `${k1.pub}\t[::1]:9998`, 'the peer follows to [::1]:9998');

    // Crypto-routing source check: a more specific peer takes 192.168.241.2/32 from wg2's peer.
    await must(ns0, 'wg', ['set', wg1, 'peer', k2.pub, 'allowed-ips', '192.168.241.0/24'], 'wider allowed IPs');
    const echo = lab.spawn(ns1, process.execPath, [UDP_ECHO, 'serve', '1111']);
    t.ok(await waitFor(() => echo.log.join('').includes('listening'), 5000), 'a UDP service on wg1');
    t.match((await lab.exec(ns2, process.execPath, [UDP_ECHO, 'send', '192.168.241.1', '1111'])).stdout, /^45\/45 identical/, 'UDP from wg2 arrives and is answered');
    const moreSpecific = keyPair().pub;
    await must(ns0, 'wg', ['set', wg1, 'peer', moreSpecific, 'allowed-ips', '192.168.241.2/32'], 'a more specific peer');
    await must(ns0, 'wg', ['set', wg2, 'listen-port', '9997'], 'wg2 moves port');
    const before = (await status(wg1)).drops.outside['source-not-allowed'] ?? 0;
    t.match((await lab.exec(ns2, process.execPath, [UDP_ECHO, 'send', '192.168.241.1', '1111'])).stdout, /^0\/45 identical/, 'now nothing comes back');
    const after = (await status(wg1)).drops.outside['source-not-allowed'] ?? 0;
    t.ok(after >= before + 45, `wg1 dropped what wg2 sent from an address its key no longer owns (${after - before} counted)`);
    await must(ns0, 'wg', ['set', wg1, 'peer', moreSpecific, 'remove'], 'remove it');
    t.equal((await must(ns0, 'wg', ['show', wg1, 'endpoints'], 'endpoints')).trim(), `${k2.pub}\t[::1]:9997`, 'wg1 learned the new port from the authenticated packets');
    echo.kill();

    await must(ns1, 'ip', ['link', 'del', wg1], 'delete a moved interface');
    await must(ns2, 'ip', ['link', 'del', wg2], 'delete a moved interface');
    t.ok(await waitFor(() => !existsSync(`/var/run/wireguard/${wg1}.sock`) && !existsSync(`/var/run/wireguard/${wg2}.sock`), 10_000), 'the processes ended and removed their UAPI sockets');
    t.ok(await waitFor(async () => (await lab.run('pgrep', ['-f', `meshd-wireguard.js ${lab.id}w`])).stdout.trim() === '', 5000), 'and exited: no process is left');

    const ctx = { ns0, ns1, ns2, wg1, wg2, start, configure, must, k1, k2 };
    await natStep(t, lab, ctx);
    await stickyStep(t, lab, ctx);
    await uapiStep(t, lab, ns0);
  });
}

interface NatCtx {
  ns0: string;
  ns1: string;
  ns2: string;
  wg1: string;
  wg2: string;
  start(ns: string, iface: string, moveTo: string | null): Promise<void>;
  configure(a: string, b: string): Promise<void>;
  must(ns: string, cmd: string, args: string[], what: string, ms?: number): Promise<string>;
  k1: { pub: string };
  k2: { pub: string };
}

/** NAT between the two (SNAT in ns0, conntrack UDP timeouts of 2 s): a 1 s keepalive keeps it open. */
async function natStep(t: Test, lab: Lab, c: NatCtx): Promise<void> {
  const { ns0, ns1, ns2, wg1, wg2, must } = c;
  await c.start(ns1, wg1, null);
  await c.start(ns2, wg2, null);
  await c.configure(wg1, wg2);
  const [rc, vc] = await lab.link(ns0, '192.168.1.1/24', ns1, '192.168.1.100/24');
  const [rs, vs] = await lab.link(ns0, '10.0.0.1/24', ns2, '10.0.0.100/24');
  void vc;
  void vs;
  await must(ns1, 'ip', ['route', 'add', 'default', 'via', '192.168.1.1'], 'default route via the NAT');
  await must(ns0, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1'], 'forwarding');
  const nat = lab.file('nat.nft', 'table ip wgnat {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr 192.168.1.0/24 ip daddr 10.0.0.0/24 snat to 10.0.0.1\n  }\n}\n');
  await must(ns0, 'nft', ['-f', nat], 'SNAT 192.168.1.0/24 → 10.0.0.1');
  await must(ns0, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=2', 'net.netfilter.nf_conntrack_udp_timeout_stream=2'], 'conntrack UDP timeouts of 2 s');
  await must(ns0, 'wg', ['set', wg1, 'peer', c.k2.pub, 'endpoint', '10.0.0.100:20000', 'persistent-keepalive', '1'], 'endpoint through the NAT, keepalive 1 s');
  await must(ns1, 'ping', ['-W', '1', '-c', '1', '192.168.241.2'], 'NAT: ping out');
  await must(ns2, 'ping', ['-W', '1', '-c', '1', '192.168.241.1'], 'NAT: ping back');
  t.equal((await must(ns0, 'wg', ['show', wg2, 'endpoints'], 'endpoints')).trim(), `${c.k1.pub}\t10.0.0.1:10000`, 'wg2 sees the NAT\'s address');
  await sleep(3000);
  await must(ns2, 'ping', ['-W', '1', '-c', '1', '192.168.241.1'], 'after 3 s (longer than the NAT\'s timeout), wg2 still reaches wg1: the keepalive kept the mapping');
  await must(ns0, 'nft', ['delete', 'table', 'ip', 'wgnat'], 'NAT gone');
  await must(ns0, 'ip', ['link', 'del', rc], 'NAT links gone');
  await must(ns0, 'ip', ['link', 'del', rs], 'NAT links gone');
  await must(ns1, 'ip', ['link', 'del', wg1], 'delete');
  await must(ns2, 'ip', ['link', 'del', wg2], 'delete');
}

/** Source addresses: sticky (replies leave from the address written to) but not too sticky. */
async function stickyStep(t: Test, lab: Lab, c: NatCtx): Promise<void> {
  const { ns0, ns1, ns2, wg1, wg2, must } = c;
  await c.start(ns1, wg1, null);
  await c.start(ns2, wg2, null);
  await c.configure(wg1, wg2);
  const v1 = `${lab.id}s1`;
  const v2 = `${lab.id}s2`;
  await must(ns1, 'ip', ['link', 'add', v1, 'type', 'veth', 'peer', 'name', v2], 'veth');
  await must(ns1, 'ip', ['link', 'set', v2, 'netns', ns2], 'veth to ns2');
  await must(ns1, 'sysctl', ['-qw', `net.ipv6.conf.${v1}.accept_dad=0`, `net.ipv4.conf.${v1}.promote_secondaries=1`], 'no DAD');
  await must(ns2, 'sysctl', ['-qw', `net.ipv6.conf.${v2}.accept_dad=0`], 'no DAD');
  const addrs = async (ns: string, dev: string, list: string[]) => {
    for (const a of list) await must(ns, 'ip', ['addr', 'add', a, 'dev', dev], `address ${a}`);
  };
  await addrs(ns1, v1, ['10.0.0.1/24', 'fd00:aa::1/96']);
  await addrs(ns2, v2, ['10.0.0.2/24', 'fd00:aa::2/96']);
  await must(ns1, 'ip', ['link', 'set', v1, 'up'], 'up');
  await must(ns2, 'ip', ['link', 'set', v2, 'up'], 'up');
  await waitFor(async () => (await lab.exec(ns2, 'ping', ['-c', '1', '-W', '1', '10.0.0.1'])).code === 0, 5000);
  const ping = (ns: string, to: string, what: string) => must(ns, 'ping', ['-W', '1', '-c', '1', to], what);
  // Not too sticky: when the address replies left from is removed, the next one is used.
  await must(ns0, 'wg', ['set', wg1, 'peer', c.k2.pub, 'endpoint', '10.0.0.2:20000'], 'endpoint');
  await ping(ns1, '192.168.241.2', 'ping over 10.0.0.1');
  await must(ns1, 'ip', ['addr', 'add', '10.0.0.10/24', 'dev', v1], 'a second address');
  await must(ns1, 'ip', ['addr', 'del', '10.0.0.1/24', 'dev', v1], 'the first one removed');
  await ping(ns1, '192.168.241.2', 'ping after the source address was removed (IPv4)');
  await must(ns0, 'wg', ['set', wg1, 'peer', c.k2.pub, 'endpoint', '[fd00:aa::2]:20000'], 'endpoint');
  await ping(ns1, '192.168.241.2', 'ping over fd00:aa::1');
  await must(ns1, 'ip', ['addr', 'add', 'fd00:aa::10/96', 'dev', v1], 'a second address');
  await must(ns1, 'ip', ['addr', 'del', 'fd00:aa::1/96', 'dev', v1], 'the first one removed');
  await ping(ns1, '192.168.241.2', 'ping after the source address was removed (IPv6)');
  // Sticky: wg1 has two addresses of each family; wg2 writes to one, the answer comes from it.
  await must(ns1, 'ip', ['link', 'set', v1, 'down'], 'down');
  await must(ns2, 'ip', ['link', 'set', v2, 'down'], 'down');
  await must(ns1, 'ip', ['addr', 'flush', 'dev', v1], 'flush');
  await must(ns2, 'ip', ['addr', 'flush', 'dev', v2], 'flush');
  await addrs(ns1, v1, ['10.0.0.1/24', '10.0.0.2/24', 'fd00:aa::1/96', 'fd00:aa::2/96']);
  await addrs(ns2, v2, ['10.0.0.3/24', 'fd00:aa::3/96']);
  await must(ns1, 'ip', ['link', 'set', v1, 'up'], 'up');
  await must(ns2, 'ip', ['link', 'set', v2, 'up'], 'up');
  await waitFor(async () => (await lab.exec(ns2, 'ping', ['-c', '1', '-W', '1', '10.0.0.2'])).code === 0, 5000);
  for (const ep of ['10.0.0.1:10000', '[fd00:aa::1]:10000', '10.0.0.2:10000', '[fd00:aa::2]:10000']) {
    await must(ns0, 'wg', ['set', wg2, 'peer', c.k1.pub, 'endpoint', ep], `wg2 writes to ${ep}`);
    await ping(ns2, '192.168.241.1', `ping via ${ep}`);
    t.equal((await must(ns0, 'wg', ['show', wg2, 'endpoints'], 'endpoints')).trim(), `${c.k1.pub}\t${ep}`, `the answers came from ${ep} (wg2 did not roam away)`);
  }
  await must(ns1, 'ip', ['link', 'del', v1], 'delete');
  await must(ns1, 'ip', ['link', 'del', wg1], 'delete');
  await must(ns2, 'ip', ['link', 'del', wg2], 'delete');
}

/** wg setconf transactions that split into many reads and writes. */
async function uapiStep(t: Test, lab: Lab, ns0: string): Promise<void> {
  const iface = `${lab.id}w0`;
  const up = async () => t.equal((await lab.exec(ns0, BIN, [iface])).code, 0, `meshd-wireguard ${iface}`);
  const setconf = async (text: string, what: string) => {
    const r = await lab.exec(ns0, 'wg', ['setconf', iface, lab.file(`${iface}.conf`, text)], 120_000);
    t.equal(r.code, 0, `${what}${r.code ? `: ${r.stderr}` : ''}`);
  };
  const del = async () => {
    await lab.exec(ns0, 'ip', ['link', 'del', iface]);
    t.ok(await waitFor(() => !existsSync(`/var/run/wireguard/${iface}.sock`), 10_000), 'gone');
  };
  await up();
  const big = ['[Interface]', `PrivateKey = ${keyPair().priv}`, '[Peer]', `PublicKey = ${keyPair().pub}`];
  for (let a = 1; a <= 255; a++) for (let b = 0; b <= 255; b++) big.push(`AllowedIPs = ${a}.${b}.0.0/16,${a}::${b}/128`);
  await setconf(big.join('\n') + '\n', 'one peer with 130,560 allowed IPs in one setconf');
  const listed = (await lab.exec(ns0, 'wg', ['show', iface, 'allowed-ips'], 60_000)).stdout.split(/\s+/).filter(Boolean).length;
  t.equal(listed, 255 * 256 * 2 + 1, 'and wg show lists them all back');
  await del();

  await up();
  const forty = ['[Interface]', `PrivateKey = ${keyPair().priv}`];
  for (let a = 1; a <= 40; a++) {
    forty.push('[Peer]', `PublicKey = ${keyPair().pub}`);
    for (let b = 1; b <= 52; b++) forty.push(`AllowedIPs = ${a}.${b}.0.0/16`);
  }
  await setconf(forty.join('\n') + '\n', '40 peers × 52 prefixes');
  const rows = (await lab.exec(ns0, 'wg', ['show', iface, 'allowed-ips'])).stdout.trim().split('\n');
  t.equal(rows.length, 40, '40 peers listed');
  t.ok(rows.every((r) => r.split(/\s+/).length === 53), 'each with its 52 prefixes');
  await del();

  await up();
  const thirty: string[] = [];
  for (let i = 0; i < 29; i++) thirty.push('[Peer]', `PublicKey = ${keyPair().pub}`);
  thirty.push('[Peer]', `PublicKey = ${keyPair().pub}`, 'AllowedIPs = 255.2.3.4/32,abcd::255/128');
  await setconf(thirty.join('\n') + '\n', '30 peers in one setconf');
  const conf = (await lab.exec(ns0, 'wg', ['showconf', iface])).stdout;
  t.equal((conf.match(/^\[Peer\]$/gm) ?? []).length, 30, 'wg showconf has all 30');
  t.match(conf, /AllowedIPs = 255\.2\.3\.4\/32, abcd::255\/128/);
  await del();
  t.not((await lab.exec(ns0, 'wg', ['show', 'doesnotexist'])).code, 0, 'wg show of no interface fails');
}
