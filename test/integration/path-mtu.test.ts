// Path MTU (issue: operations): two hosts on 1500-byte links, with a link of a smaller MTU between
// their routers (A — R1 ═ R2 — B). With no MTU = in the configs, each host probes its peer's path
// with padded disco pings: over a 1300-byte link a 1400-byte ping with DF gets "fragmentation
// needed" naming the path's MTU (1300 - 60 for the IPv4 underlay), a TCP transfer completes in
// WireGuard datagrams exactly as large as the link takes, and `meshd status` shows the probed MTU;
// over 1500 bytes the probe reaches 1420 and such pings pass. A config's MTU = is kept as it is.
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { keyPair } from '../helpers/keys.js';
import { transfer, type Host } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping', 'tcpdump']);

interface World {
  lab: Lab;
  a: Host;
  b: Host;
  /** R2's device on the narrow link, where the underlay datagrams are watched. */
  narrowDev: string;
  r2: string;
}

/** A — R1 ═(narrowMtu)═ R2 — B, routed, every other link 1500 bytes. */
async function world(lab: Lab, narrowMtu: number): Promise<World> {
  const a = await lab.ns('a');
  const r1 = await lab.ns('r1');
  const r2 = await lab.ns('r2');
  const b = await lab.ns('b');
  const [aDev] = await lab.link(a, '198.51.100.2/24', r1, '198.51.100.1/24');
  // A's UDP GSO sends are cut into datagrams before they leave A (as a NIC does on the wire), so
  // the narrow link carries, and tcpdump shows, each datagram as it is.
  await lab.exec(a, 'ip', ['link', 'set', aDev, 'gso_max_segs', '1']);
  const [n1, n2] = await lab.link(r1, '203.0.113.1/30', r2, '203.0.113.2/30');
  await lab.link(b, '192.0.2.2/24', r2, '192.0.2.1/24');
  await lab.exec(r1, 'ip', ['link', 'set', n1, 'mtu', String(narrowMtu)]);
  await lab.exec(r2, 'ip', ['link', 'set', n2, 'mtu', String(narrowMtu)]);
  for (const r of [r1, r2]) await lab.exec(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await lab.exec(r1, 'ip', ['route', 'add', '192.0.2.0/24', 'via', '203.0.113.2']);
  await lab.exec(r2, 'ip', ['route', 'add', '198.51.100.0/24', 'via', '203.0.113.1']);
  await lab.exec(a, 'ip', ['route', 'add', 'default', 'via', '198.51.100.1']);
  await lab.exec(b, 'ip', ['route', 'add', 'default', 'via', '192.0.2.1']);
  const host = (ns: string, n: number, underlay: string): Host => ({ ns, iface: `${lab.id}${n === 1 ? 'a' : 'b'}`, underlay, mesh4: `10.77.0.${n}`, mesh6: `fd77::${n}`, keys: keyPair() });
  return { lab, a: host(a, 1, '198.51.100.2'), b: host(b, 2, '192.0.2.2'), narrowDev: n2, r2 };
}

function config(self: Host, other: Host, extra: string[] = []): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.priv}`,
    `Address = ${self.mesh4}/24, ${self.mesh6}/64`,
    'ListenPort = 51820',
    ...extra,
    '',
    '[Peer]',
    `PublicKey = ${other.keys.pub}`,
    `AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`,
    `Endpoint = ${other.underlay}:51820`,
    '',
  ].join('\n');
}

interface Status {
  mtu: number;
  peers: { pathMtu: { mtu: number; source: string }; path: { kind: string } }[];
  counters: Record<string, number>;
}

async function status(lab: Lab, iface: string): Promise<Status> {
  const r = await lab.cli(['status', iface, '--json']);
  if (r.code !== 0) throw new Error(`meshd status ${iface}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}

async function up(w: World, extra: string[] = []): Promise<void> {
  await w.lab.meshd(w.a.ns, w.lab.file('a.conf', config(w.a, w.b, extra)), w.a.iface);
  await w.lab.meshd(w.b.ns, w.lab.file('b.conf', config(w.b, w.a, extra)), w.b.iface);
  // Traffic makes the peers active: discovery confirms the direct path and probes it.
  await w.lab.exec(w.a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', w.b.mesh4]);
}

/** Waits until `iface` reports a probed path MTU for its peer; returns the last status seen. */
async function probed(lab: Lab, iface: string, pinger: () => Promise<unknown>): Promise<Status> {
  let last: Status | null = null;
  await waitFor(async () => {
    await pinger(); // keeps the peer active (discovery probes only peers with traffic)
    last = await status(lab, iface);
    return last.peers[0]?.pathMtu.source === 'probed';
  }, 20_000, 250);
  return last!;
}

/** The UDP payload lengths tcpdump printed ("UDP, length N"). */
function udpLengths(log: string): number[] {
  return [...log.matchAll(/UDP, length (\d+)/g)].map((m) => Number(m[1]));
}

if (why) t.plan(0, why);
else {
  t.test('a 1300-byte link between the routers: probed to 1240, DF pings get "frag needed", TCP fills the path', async (t) => {
    const lab = new Lab(t);
    const w = await world(lab, 1300);
    await up(w);
    const sa = await probed(lab, w.a.iface, () => lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '1', w.b.mesh4]));
    t.equal(sa.mtu, 1420, 'the TUN takes the 1500-byte underlay minus 80');
    t.same(sa.peers[0].pathMtu, { mtu: 1240, source: 'probed' }, 'A probes the path to 1300 - 20 (IPv4) - 8 (UDP) - 32 (WireGuard)');
    t.ok(sa.counters.pathMtuProbesSent > 0 && sa.counters.pathMtuProbesSent <= 64, `a bounded number of probes: ${sa.counters.pathMtuProbesSent}`);
    const sb = await probed(lab, w.b.iface, () => lab.exec(w.b.ns, 'ping', ['-c', '1', '-W', '1', w.a.mesh4]));
    t.same(sb.peers[0].pathMtu, { mtu: 1240, source: 'probed' }, 'and B the other way');
    const text = await lab.cli(['status', w.a.iface]);
    t.match(text.stdout, /path MTU: 1240 \(probed\)/, 'meshd status shows it');

    // 1400 bytes with DF: the answer is "fragmentation needed" with the path's MTU (the first ping
    // gets meshd's ICMP; later ones the kernel's own cached refusal, with the same MTU).
    const big = await lab.exec(w.a.ns, 'ping', ['-M', 'do', '-s', String(1400 - 28), '-c', '2', '-i', '0.3', '-W', '2', w.b.mesh4]);
    t.not(big.code, 0, 'the 1400-byte DF ping does not pass');
    t.match(big.stdout + big.stderr, /mtu ?= ?1240/, `it is told the MTU: ${(big.stdout + big.stderr).trim()}`);
    const fits = await lab.exec(w.a.ns, 'ping', ['-M', 'do', '-s', String(1240 - 28), '-c', '2', '-i', '0.3', '-W', '2', w.b.mesh4]);
    t.equal(fits.code, 0, `a 1240-byte DF ping passes: ${fits.stdout}`);
    const v6 = await lab.exec(w.a.ns, 'ping', ['-6', '-M', 'do', '-s', String(1400 - 48), '-c', '2', '-i', '0.3', '-W', '2', w.b.mesh6]);
    t.match(v6.stdout + v6.stderr, /mtu ?= ?1280/, `IPv6 is told 1280 (its minimum): ${(v6.stdout + v6.stderr).trim()}`);
    const inside = (await status(lab, w.a.iface)) as unknown as { drops: { inside: Record<string, number> } };
    t.ok(inside.drops.inside['too-big'] > 0, 'the refused packets are counted as too-big');

    // A transfer: every datagram within the narrow link, and the bulk of them exactly as large as
    // it takes (1240 inner + 32 = 1272 bytes of UDP payload).
    const dump = lab.spawn(w.r2, 'tcpdump', ['-i', w.narrowDev, '-n', '-l', 'udp', 'and', 'src', w.a.underlay]);
    await waitFor(() => dump.log.join('').includes('listening on'), 5000);
    const r = await transfer(lab, w.a.ns, w.b.ns, w.b.mesh4, 20_000_000);
    t.equal(r.sent.split(' ')[0], '20000000', `the transfer completes: ${r.sendErr}`);
    t.equal(r.received, r.sent, 'and arrives intact');
    await new Promise((res) => setTimeout(res, 500));
    dump.kill('SIGINT');
    await new Promise((res) => setTimeout(res, 300));
    const lens = udpLengths(dump.log.join(''));
    t.ok(lens.length > 1000, `datagrams seen on the narrow link: ${lens.length}`);
    t.equal(Math.max(...lens), 1272, 'none larger than the link takes');
    const full = lens.filter((l) => l === 1272).length;
    t.ok(full > lens.length * 0.8, `full-size for the path: ${full} of ${lens.length}`);
  });

  t.test('a 1500-byte path: the probe reaches 1420 and 1420-byte DF pings pass', async (t) => {
    const lab = new Lab(t);
    const w = await world(lab, 1500);
    await up(w);
    const sa = await probed(lab, w.a.iface, () => lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '1', w.b.mesh4]));
    t.same(sa.peers[0].pathMtu, { mtu: 1420, source: 'probed' }, 'probed to the TUN MTU');
    t.equal(sa.counters.pathMtuProbesSent, 4, 'one round: the TUN MTU and 1280, two copies each');
    const full = await lab.exec(w.a.ns, 'ping', ['-M', 'do', '-s', String(1420 - 28), '-c', '3', '-i', '0.2', '-W', '2', w.b.mesh4]);
    t.equal(full.code, 0, `1420-byte DF pings pass: ${full.stdout}`);
    const v6 = await lab.exec(w.a.ns, 'ping', ['-6', '-M', 'do', '-s', String(1420 - 48), '-c', '3', '-i', '0.2', '-W', '2', w.b.mesh6]);
    t.equal(v6.code, 0, `and IPv6 ones: ${v6.stdout}`);
  });

  t.test('MTU = in the config is kept exactly: no probes, no ICMP of our own', async (t) => {
    const lab = new Lab(t);
    const w = await world(lab, 1300);
    await up(w, ['MTU = 1380']);
    await lab.exec(w.a.ns, 'ping', ['-c', '5', '-i', '0.3', '-W', '2', w.b.mesh4]);
    const s = await status(lab, w.a.iface);
    t.equal(s.mtu, 1380, 'the TUN has the MTU the config names');
    t.same(s.peers[0].pathMtu, { mtu: 1380, source: 'configured' });
    t.equal(s.counters.pathMtuProbesSent, 0, 'nothing is probed');
    const link = await lab.exec(w.a.ns, 'ip', ['-o', 'link', 'show', w.a.iface]);
    t.match(link.stdout, /mtu 1380 /);
  });
}
