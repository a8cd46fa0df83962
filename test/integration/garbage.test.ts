// Garbage and replay from a third namespace while a transfer runs: the transfer completes
// intact, every bad datagram is a counted drop, and the peer's endpoint is not hijacked.
import t from 'tap';
import { join } from 'node:path';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshdBoth, transfer, twoHosts } from '../helpers/two-hosts.js';

const GARBAGE_JS = join(import.meta.dirname, '..', 'helpers', 'garbage.js');
const why = labUnavailable(['tcpdump']);

if (why) t.plan(0, why);
else {
  t.test('hostile datagrams during a transfer are dropped and counted', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const nsC = await lab.ns('c');
    await lab.link(nsC, '198.51.100.3/24', h.b.ns, '198.51.100.2/24');
    const vethAB = (await lab.exec(h.b.ns, 'ip', ['-o', '-4', 'addr', 'show', 'to', '192.0.2.0/24'])).stdout.split(/\s+/)[1];

    // Capture real A→B traffic (handshake and data) to replay later from C.
    const pcap = join(lab.dir, 'ab.pcap');
    const capture = lab.spawn(h.b.ns, 'tcpdump', ['-i', vethAB, '-U', '-w', pcap, '-c', '400', 'udp', 'dst', 'port', '51820']);
    await new Promise((r) => setTimeout(r, 1000));
    await meshdBoth(h);

    const bytes = 60 * 1024 * 1024;
    const running = transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, bytes);
    t.ok(await waitFor(() => capture.exitCode !== null, 20_000), 'captured 400 packets of real traffic');
    const g = await lab.exec(nsC, process.execPath, [GARBAGE_JS, '198.51.100.2', '51820', '4', pcap], 60_000);
    t.equal(g.code, 0, g.stderr);
    t.match(g.stdout, /sent \d+ datagrams \(\d+ captured, [1-9]\d* initiations, [1-9]\d* transport\)/, g.stdout);

    const r = await running;
    t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
    t.equal(r.received, r.sent, 'the transfer completed with the same SHA-256');

    const s = JSON.parse((await lab.cli(['status', h.b.iface, '--json'])).stdout);
    const d = s.drops.outside as Record<string, number>;
    for (const reason of ['not-wireguard', 'bad-size', 'bad-mac1', 'unknown-receiver', 'decrypt-failed', 'replay', 'replayed-timestamp']) {
      t.ok(d[reason] > 0, `drops counted as ${reason}: ${d[reason]}`);
    }
    t.equal(s.peers[0].endpoint, '192.0.2.1:51820', 'replays from another address did not move the peer');
    const ping = await lab.exec(h.a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', h.b.mesh4]);
    t.equal(ping.code, 0, 'the tunnel still works afterwards');
  });
}
