// meshd hosts that cannot reach each other over UDP talk through meshd-relay: over TLS with a
// self-signed certificate, across a relay restart, across the loss of one of two relays, and
// without the relay's link ever carrying the plaintext.
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Lab, labUnavailable, sleep, waitFor } from '../helpers/lab.js';
import { transfer } from '../helpers/two-hosts.js';
import { blockDirectUdp, relayArgs, relayConfig, relayLab, relayUrl } from '../helpers/relay-lab.js';

const why = labUnavailable(['nft', 'openssl', 'ping', 'tcpdump']);

async function status(lab: Lab, iface: string) {
  return JSON.parse((await lab.cli(['status', iface, '--json'])).stdout);
}

/** icmp_seq numbers that got a reply, from ping's output. */
function repliedSeqs(out: string): number[] {
  return [...out.matchAll(/icmp_seq=(\d+) ttl/g)].map((m) => Number(m[1]));
}

/**
 * Hosts A and B with UDP between them blocked and two relays, both logged in to both; returns once
 * traffic flows through the first relay (a relay that said "peer gone" before the peer arrived is
 * avoided until the peer is present there).
 */
async function twoRelays(t: Test, tls: boolean, relayExtra: string[] = []) {
  const lab = new Lab(t);
  const rl = await relayLab(lab, 2);
  await blockDirectUdp(rl);
  const r0 = await lab.relay(rl.relayNs[0], relayArgs(rl, 0, tls, relayExtra));
  await lab.relay(rl.relayNs[1], relayArgs(rl, 1, tls, relayExtra));
  const urls = [relayUrl(rl, 0, tls), relayUrl(rl, 1, tls)];
  await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, urls, { tls })), rl.a.iface);
  await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, urls, { tls })), rl.b.iface);
  for (const h of [rl.a, rl.b]) {
    t.ok(await waitFor(async () => (await status(lab, h.iface)).relays.every((r: { state: string }) => r.state === 'connected'), 15_000), `${h.iface} on both relays`);
  }
  t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'connected');
  t.ok(await waitFor(async () => {
    await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4]);
    return (await status(lab, rl.a.iface)).peers[0].path.relay === urls[0];
  }, 15_000), 'the first relay carries the traffic');
  return { lab, rl, r0, urls };
}

if (why) t.plan(0, why);
else {
  t.test('UDP blocked: ping and 20 MB through a TLS relay with a self-signed certificate', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    await lab.relay(rl.relayNs[0], relayArgs(rl, 0, true));
    const url = relayUrl(rl, 0, true);
    // A even knows B's endpoint: the direct attempt fails and the relay carries everything.
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url], { tls: true, endpoint: true })), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url], { tls: true })), rl.b.iface);
    for (const h of [rl.a, rl.b]) {
      t.ok(await waitFor(async () => (await status(lab, h.iface)).relays[0].state === 'connected', 10_000), `${h.iface} logged in to the relay over TLS`);
    }

    const p = await lab.exec(rl.a.ns, 'ping', ['-c', '5', '-i', '0.2', '-W', '5', rl.b.mesh4]);
    t.equal(p.code, 0, `A -> B via relay\n${p.stdout}`);
    const q = await lab.exec(rl.b.ns, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '5', rl.a.mesh6]);
    t.equal(q.code, 0, `B -> A via relay (IPv6 overlay)\n${q.stdout}`);

    const bytes = 20 * 1024 * 1024;
    const r = await transfer(lab, rl.a.ns, rl.b.ns, rl.b.mesh4, bytes);
    t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
    t.equal(r.received, r.sent, '20 MB arrived with the same SHA-256');

    const s = await status(lab, rl.a.iface);
    t.equal(s.relays[0].state, 'connected');
    t.equal(s.peers[0].path.kind, 'relay');
    t.equal(s.peers[0].path.relay, url);
    t.match(s.peers[0].path.why, /no direct reply/, 'status says why the peer is relayed');
    const human = await lab.cli(['status', rl.b.iface]);
    t.match(human.stdout, new RegExp(`path: relay ${url.replace(/[.\/]/g, '\\$&')} \\(no endpoint known\\)`));
  });

  t.test('the relay restarts during a long ping: replies resume within 10 s, no meshd restart', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    const args = relayArgs(rl, 0, false);
    let relay = await lab.relay(rl.relayNs[0], args);
    const url = relayUrl(rl, 0, false);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url])), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url])), rl.b.iface);
    t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'connected via the relay');

    const INTERVAL = 0.2;
    const pinging = lab.exec(rl.a.ns, 'ping', ['-c', '150', '-i', String(INTERVAL), '-W', '1', rl.b.mesh4], 60_000);
    await sleep(3000);
    relay.kill('SIGKILL');
    const killedAt = Date.now();
    await sleep(3000);
    relay = await lab.relay(rl.relayNs[0], args);
    const restartedAt = Date.now();
    const out = (await pinging).stdout;
    const seqs = repliedSeqs(out);
    t.ok(seqs.length > 0, 'some replies');
    let gap = 0;
    for (let i = 1; i < seqs.length; i++) gap = Math.max(gap, seqs[i] - seqs[i - 1]);
    const outageS = (restartedAt - killedAt) / 1000;
    t.ok(gap * INTERVAL < outageS + 10, `longest gap ${(gap * INTERVAL).toFixed(1)} s for an outage of ${outageS.toFixed(1)} s (limit: outage + 10 s)`);
    t.ok(seqs.includes(150), 'the last ping got its reply');
  });

  t.test('two relays, one killed: traffic moves to the other', async (t) => {
    const { lab, rl, r0, urls } = await twoRelays(t, true);

    const pinging = lab.exec(rl.a.ns, 'ping', ['-c', '60', '-i', '0.2', '-W', '1', rl.b.mesh4], 60_000);
    await sleep(2000);
    r0.kill('SIGKILL');
    const out = (await pinging).stdout;
    const seqs = repliedSeqs(out);
    let gap = 0;
    for (let i = 1; i < seqs.length; i++) gap = Math.max(gap, seqs[i] - seqs[i - 1]);
    t.ok(gap * 0.2 <= 5, `traffic resumed within ${(gap * 0.2).toFixed(1)} s`);
    t.ok(seqs.includes(60), 'and keeps flowing');
    const s = await status(lab, rl.a.iface);
    t.equal(s.peers[0].path.relay, urls[1], 'now through the second relay');
    t.not(s.relays[0].state, 'connected', 'the dead relay is shown as not connected');
  });

  t.test('the relay link never carries the plaintext (capture of a plain ws:// relay)', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    await lab.relay(rl.relayNs[0], relayArgs(rl, 0, false));
    const url = relayUrl(rl, 0, false);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url])), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url])), rl.b.iface);
    t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'connected');

    const relayDev = (await lab.exec(rl.relayNs[0], 'ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.split(':')[1].trim().split('@')[0];
    const onRelay = join(lab.dir, 'relay.pcap');
    const onTunnel = join(lab.dir, 'tunnel.pcap');
    const cap1 = lab.spawn(rl.relayNs[0], 'tcpdump', ['-i', relayDev, '-U', '-s', '0', '-w', onRelay, 'tcp']);
    const cap2 = lab.spawn(rl.a.ns, 'tcpdump', ['-i', rl.a.iface, '-U', '-s', '0', '-w', onTunnel]);
    await sleep(1000);
    const marker = Buffer.from('meshd-plaintext!'); // 16 bytes: ping -p repeats it through the payload
    const p = await lab.exec(rl.a.ns, 'ping', ['-c', '10', '-i', '0.2', '-W', '3', '-p', marker.toString('hex'), rl.b.mesh4]);
    t.equal(p.code, 0, 'pings with a marker payload crossed the relay');
    await sleep(500);
    cap1.kill('SIGINT');
    cap2.kill('SIGINT');
    await waitFor(() => cap1.exitCode !== null && cap2.exitCode !== null, 5000);
    const relayBytes = readFileSync(onRelay);
    const tunnelBytes = readFileSync(onTunnel);
    t.ok(relayBytes.length > 2000, `the relay capture holds the relayed traffic (${relayBytes.length} bytes)`);
    t.ok(tunnelBytes.includes(marker), 'control: the same capture method finds the marker inside the tunnel');
    t.notOk(relayBytes.includes(marker), 'the relay link never carried the marker');
    t.notOk(relayBytes.includes(Buffer.from('meshd-plain')), 'not even part of it');
  });

  t.test('a relay killed mid-transfer: the TCP transfer finishes through the other relay, intact', async (t) => {
    const { lab, rl, r0, urls } = await twoRelays(t, false, ['--client-rate', '0']);
    const bytes = 60 * 1024 * 1024;
    const running = transfer(lab, rl.a.ns, rl.b.ns, rl.b.mesh4, bytes);
    await sleep(700);
    r0.kill('SIGKILL');
    const r = await running;
    t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
    t.equal(r.received, r.sent, 'the transfer completed with the same SHA-256');
    t.equal((await status(lab, rl.a.iface)).peers[0].path.relay, urls[1], 'through the second relay');
  });
}
