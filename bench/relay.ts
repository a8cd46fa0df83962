// Relay benchmarks:
//  1. iperf3 between two meshd hosts over the direct path, then forced onto the relay (TLS),
//     in the same run;
//  2. relay capacity: RSS of one meshd-relay process holding N idle logged-in clients.
//   BENCH_SECONDS (default 5), BENCH_RELAY_CLIENTS (default "1000,5000")
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep, waitFor } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import { iperf3, machine, withBenchLab, writeResult } from './common.js';
import { blockDirectUdp, relayArgs, relayConfig, relayLab, relayUrl } from '../test/helpers/relay-lab.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLIENT_COUNTS = (process.env.BENCH_RELAY_CLIENTS ?? '1000,5000,10000').split(',').map(Number);
const CLIENTS_JS = join(packageRoot(), 'dist', 'bench', 'relay-clients.js');

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function main(): Promise<void> {
  await withBenchLab(['iperf3', 'nft', 'openssl'], async (lab) => {
    const rl = await relayLab(lab, 1);
    const relay = await lab.relay(rl.relayNs[0], relayArgs(rl, 0, true, ['--client-rate', '0']));
    const url = relayUrl(rl, 0, true);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url], { tls: true, endpoint: true })), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url], { tls: true, endpoint: true })), rl.b.iface);
    const path = async () => JSON.parse((await lab.cli(['status', rl.a.iface, '--json'])).stdout).peers[0].path.kind as string;
    await lab.exec(rl.a.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', rl.b.mesh4]);
    if (!(await waitFor(async () => (await path()) === 'direct', 10_000))) throw new Error('no direct path');
    const direct = (await iperf3(lab, rl.a.ns, rl.b.ns, rl.b.mesh4, SECONDS)).bitsPerSecond / 1e9;
    process.stderr.write(`direct: ${direct.toFixed(3)} Gbit/s\n`);
    await blockDirectUdp(rl);
    await lab.exec(rl.a.ns, 'ping', ['-c', '10', '-i', '0.5', '-W', '3', rl.b.mesh4]);
    if (!(await waitFor(async () => (await path()) === 'relay', 15_000))) throw new Error('did not move to the relay');
    const relayed = (await iperf3(lab, rl.a.ns, rl.b.ns, rl.b.mesh4, SECONDS)).bitsPerSecond / 1e9;
    process.stderr.write(`relay: ${relayed.toFixed(3)} Gbit/s\n`);

    // Capacity: idle logged-in clients on one relay (plain ws on loopback inside the relay's namespace).
    const cap = await lab.relay(rl.relayNs[0], ['--listen', '127.0.0.1:9000', '--no-stun', '--max-clients', '100000']);
    await sleep(500);
    const base = rssKiB(cap.pid!);
    const capacity: { clients: number; loggedIn: number; rssMiB: number; kibPerClient: number }[] = [];
    let held = 0;
    let loggedInTotal = 0;
    for (const n of CLIENT_COUNTS) {
      const add = n - held;
      const c = lab.spawn(rl.relayNs[0], process.execPath, [CLIENTS_JS, 'ws://127.0.0.1:9000/', String(add)]);
      if (!(await waitFor(() => c.log.join('').includes('logged-in'), 300_000, 200))) throw new Error('clients did not log in');
      held = n;
      await sleep(1000);
      const rss = rssKiB(cap.pid!);
      loggedInTotal += Number(/logged-in (\d+)/.exec(c.log.join(''))?.[1]);
      capacity.push({ clients: n, loggedIn: loggedInTotal, rssMiB: rss / 1024, kibPerClient: (rss - base) / n });
      process.stderr.write(`${n} clients: relay RSS ${(rss / 1024).toFixed(1)} MiB, ${((rss - base) / n).toFixed(1)} KiB per client\n`);
    }
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { seconds: SECONDS, mtu: 1280, relayTransport: 'wss (TLS), one relay' },
      throughputGbps: { direct, relay: relayed, relayOverDirect: relayed / direct },
      capacity: { baseRssMiB: base / 1024, points: capacity },
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    writeResult('relay', result);
    relay.kill('SIGTERM');
  });
}

void main();
