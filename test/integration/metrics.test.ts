// MetricsListen: Prometheus text from a running daemon. Byte counters equal `meshd status --json`,
// drop counters rise when garbage arrives, handshakes and paths are there, the endpoint answers
// only where it was told to listen, and it is gone when the daemon stops; serving metrics does not
// wake an idle daemon a hundred times a second.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping', 'curl']);

/** The value of one series in Prometheus text (labels as written by prom-client), or null. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

if (why) t.plan(0, why);
else {
  t.test('a daemon serves metrics that match its status, on the address it was given only', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MetricsListen = 127.0.0.1:9586', peerName: 'bob' })), h.a.iface);
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: `MetricsListen = ${h.b.underlay}:9587` })), h.b.iface);
    t.match(ma.log.join(''), /serving Prometheus metrics/);
    const scrapeA = async () => {
      const r = await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', 'http://127.0.0.1:9586/metrics']);
      if (r.code !== 0) throw new Error(`scrape failed: ${r.code} ${r.stderr}`);
      return r.stdout;
    };
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '20', '-i', '0.05', '-s', '1000', '-W', '2', h.b.mesh4])).code, 0, 'traffic flows');

    // Bytes: scrape between two identical status snapshots, so nothing moved in between.
    type St = { peers: { rxBytes: number; txBytes: number }[] };
    const status = async (): Promise<St> => JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout) as St;
    let matched = false;
    for (let i = 0; i < 20 && !matched; i++) {
      const before = await status();
      const text = await scrapeA();
      const after = await status();
      if (JSON.stringify(before.peers) !== JSON.stringify(after.peers)) continue;
      matched = true;
      t.equal(sample(text, 'meshd_peer_receive_bytes_total{peer="bob"}'), before.peers[0].rxBytes, 'rx bytes are the status figure');
      t.equal(sample(text, 'meshd_peer_transmit_bytes_total{peer="bob"}'), before.peers[0].txBytes, 'tx bytes are the status figure');
      t.equal(sample(text, 'meshd_receive_bytes_total'), before.peers[0].rxBytes, 'the aggregate too');
      t.ok(before.peers[0].rxBytes > 20 * 1000, 'and they count the pings');
    }
    t.ok(matched, 'status held still around a scrape');

    const text = await scrapeA();
    t.equal(sample(text, 'meshd_peer_path{peer="bob",kind="direct"}'), 1, 'the path kind');
    t.equal(sample(text, 'meshd_peers{path="direct"}'), 1);
    const completed = (sample(text, 'meshd_handshakes_completed_total{role="initiator"}') ?? 0) + (sample(text, 'meshd_handshakes_completed_total{role="responder"}') ?? 0);
    t.ok(completed >= 1, 'a handshake completed');
    t.ok((sample(text, 'meshd_peer_last_handshake_age_seconds{peer="bob"}') ?? -1) >= 0, 'handshake age');
    t.equal(sample(text, 'meshd_drops_total{direction="outside",reason="not-wireguard"}'), 0, 'every drop reason is there, at 0');
    t.match(text, /^process_cpu_seconds_total /m, 'process metrics');
    t.match(text, /^# TYPE meshd_peer_receive_bytes_total counter$/m);

    // Garbage from the other namespace: counted drops.
    const send = `const s=require('dgram').createSocket('udp4');let n=0;const f=()=>s.send(Buffer.from('garbage, not wireguard'),51820,'${h.a.underlay}',()=>{if(++n<50)f();else s.close()});f()`;
    t.equal((await lab.exec(h.b.ns, process.execPath, ['-e', send])).code, 0);
    t.ok(
      await waitFor(async () => sample(await scrapeA(), 'meshd_drops_total{direction="outside",reason="not-wireguard"}') === 50, 5000),
      'the 50 garbage datagrams show as drops',
    );

    // Reachability: a's endpoint is on its loopback only; b's on its underlay address.
    t.not((await lab.exec(h.b.ns, 'curl', ['-s', '--max-time', '3', `http://${h.a.underlay}:9586/metrics`])).code, 0, "a's metrics are not reachable from b");
    const fromA = await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', `http://${h.b.underlay}:9587/metrics`]);
    t.equal(fromA.code, 0, "b's metrics are reachable where b was told to listen");
    t.match(fromA.stdout, /^meshd_info\{/m);
    t.equal((await lab.exec(h.a.ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', 'http://127.0.0.1:9586/other'])).stdout, '404');

    t.equal((await lab.cli(['down', h.a.iface])).code, 0);
    t.ok(await waitFor(() => ma.exitCode !== null, 10_000), 'the daemon stops');
    t.not((await lab.exec(h.a.ns, 'curl', ['-s', '--max-time', '3', 'http://127.0.0.1:9586/metrics'])).code, 0, 'and its metrics socket is gone');
  });

  t.test('an idle daemon with MetricsListen still sleeps: a few wakes a second, not a hundred', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MetricsListen = 127.0.0.1:9586' })), h.a.iface);
    t.equal((await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', 'http://127.0.0.1:9586/metrics'])).code, 0, 'metrics are served');
    // The main thread's voluntary context switches: one per wake of the event loop.
    const wakes = () => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${ma.pid}/status`, 'utf8'))![1]);
    await sleep(3000); // start-up, the warm-up and the first STUN and discovery rounds
    const before = wakes();
    await sleep(5000);
    const perSecond = (wakes() - before) / 5;
    // About 5 a second without metrics (the tick, discovery, STUN's network check); 100 with a 10 ms sampler.
    t.ok(perSecond < 30, `${perSecond} wakes a second`);
    const text = (await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', 'http://127.0.0.1:9586/metrics'])).stdout;
    t.ok((sample(text, 'nodejs_eventloop_lag_p99_seconds') ?? -1) > 0, 'the event-loop lag histogram still has samples');
  });

  t.test('a MetricsListen that cannot be bound stops the start with one line naming it', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const conf = lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MetricsListen = 198.51.100.1:9586' }));
    const p = lab.spawn(h.a.ns, process.execPath, [new URL('../../../bin/meshd.js', import.meta.url).pathname, 'up', conf, '--interface', h.a.iface]);
    const code = await new Promise<number | null>((resolve) => p.once('exit', resolve));
    t.not(code, 0);
    t.match(p.log.join(''), /MetricsListen = 198\.51\.100\.1:9586: cannot listen \(EADDRNOTAVAIL\)/);
    t.not((await lab.exec(h.a.ns, 'ip', ['link', 'show', h.a.iface])).code, 0, 'nothing left behind');
  });
}
