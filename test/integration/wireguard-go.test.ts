// meshd ⇄ Debian's wireguard-go (configured with wg setconf): each side initiates in turn,
// ping both ways, and an iperf3 run across the tunnel.
import t, { type Test } from 'tap';
import { Lab, labUnavailable } from '../helpers/lab.js';
import { meshConfig, twoHosts, type Host, type TwoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['wireguard-go', 'wg', 'ping', 'iperf3']);

/** Starts wireguard-go as host `self`, configured like wg-quick would, with `other` as peer. */
async function wireguardGo(h: TwoHosts, self: Host, other: Host, withEndpoint: boolean) {
  const { lab } = h;
  const proc = await lab.wireguardGo(self.ns, self.iface);
  const conf = lab.file(
    `${self.iface}-wg.conf`,
    [
      '[Interface]',
      `PrivateKey = ${self.keys.priv}`,
      'ListenPort = 51820',
      '[Peer]',
      `PublicKey = ${other.keys.pub}`,
      `AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`,
      ...(withEndpoint ? [`Endpoint = ${other.underlay}:51820`] : []),
      '',
    ].join('\n'),
  );
  const set = await lab.exec(self.ns, 'wg', ['setconf', self.iface, conf]);
  if (set.code !== 0) throw new Error(`wg setconf: ${set.stderr}`);
  await lab.exec(self.ns, 'ip', ['addr', 'add', `${self.mesh4}/24`, 'dev', self.iface]);
  await lab.exec(self.ns, 'ip', ['addr', 'add', `${self.mesh6}/64`, 'dev', self.iface]);
  await lab.exec(self.ns, 'ip', ['link', 'set', self.iface, 'mtu', '1280', 'up']);
  return proc;
}

async function pingBothWays(t: Test, h: TwoHosts) {
  for (const [from, to] of [
    [h.a, h.b],
    [h.b, h.a],
  ]) {
    const p4 = await h.lab.exec(from.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', to.mesh4]);
    t.equal(p4.code, 0, `ping ${from.mesh4} -> ${to.mesh4}\n${p4.stdout}`);
    const p6 = await h.lab.exec(from.ns, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '3', to.mesh6]);
    t.equal(p6.code, 0, `ping ${from.mesh6} -> ${to.mesh6}\n${p6.stdout}`);
  }
}

if (why) t.plan(0, why);
else {
  t.test('meshd initiates to wireguard-go', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    await wireguardGo(h, h.b, h.a, false);
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b)), h.a.iface);
    await pingBothWays(t, h);

    const show = await lab.exec(h.b.ns, 'wg', ['show', h.b.iface, 'endpoints']);
    t.match(show.stdout, /192\.0\.2\.1:51820/, 'wireguard-go learned meshd\'s endpoint from the handshake meshd initiated');

    await lab.exec(h.b.ns, 'iperf3', ['-s', '-D', '-1']);
    await new Promise((r) => setTimeout(r, 300));
    const ip = await lab.exec(h.a.ns, 'iperf3', ['-c', h.b.mesh4, '-t', '3', '-J']);
    t.equal(ip.code, 0, ip.stderr);
    const bps = JSON.parse(ip.stdout).end.sum_received.bits_per_second as number;
    t.ok(bps > 1e6, `iperf3 meshd -> wireguard-go moved ${(bps / 1e6).toFixed(0)} Mbit/s`);
  });

  t.test('wireguard-go initiates to meshd', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { endpoint: false })), h.a.iface);
    await wireguardGo(h, h.b, h.a, true);
    // wireguard-go speaks first: its ping starts the handshake.
    const first = await lab.exec(h.b.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', h.a.mesh4]);
    t.equal(first.code, 0, `wireguard-go -> meshd\n${first.stdout}`);
    await pingBothWays(t, h);

    await lab.exec(h.a.ns, 'iperf3', ['-s', '-D', '-1']);
    await new Promise((r) => setTimeout(r, 300));
    const ip = await lab.exec(h.b.ns, 'iperf3', ['-c', h.a.mesh4, '-t', '3', '-J']);
    t.equal(ip.code, 0, ip.stderr);
    const bps = JSON.parse(ip.stdout).end.sum_received.bits_per_second as number;
    t.ok(bps > 1e6, `iperf3 wireguard-go -> meshd moved ${(bps / 1e6).toFixed(0)} Mbit/s`);
    const st = JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout);
    t.same(st.peers[0].path, { kind: 'direct', endpoint: '192.0.2.2:51820' }, 'meshd learned the initiator\'s endpoint');
  });
}
