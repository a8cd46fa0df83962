// Handshakes under an initiation flood: a meshd host (A) flooded from a third namespace with
// mac1-valid initiations from strangers while a legitimate peer (B) starts up and handshakes.
// Reports the time until B's first ping is answered, with and without the flood, A's CPU during the
// flood, and how A dropped the flood (cookies, rate limit). Writes bench/results/flood-*.json.
//   BENCH_FLOOD_SECONDS (default 20), BENCH_FLOOD_TRIALS (default 3)
import { join } from 'node:path';
import { sleep, waitFor, type Lab } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, twoHosts, type TwoHosts } from '../test/helpers/two-hosts.js';
import { cpuSeconds, machine, median, withBenchLab, writeResult } from './common.js';

const SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 20);
const TRIALS = Number(process.env.BENCH_FLOOD_TRIALS ?? 3);
const FLOODER_JS = join(packageRoot(), 'dist', 'bench', 'flooder.js');

/** Starts B, pings A until answered; returns ms from start to the first answer, then stops B. */
async function timeToFirstPing(lab: Lab, h: TwoHosts, conf: string): Promise<number> {
  const started = Date.now();
  const b = await lab.meshd(h.b.ns, conf, h.b.iface);
  const ok = await waitFor(async () => (await lab.exec(h.b.ns, 'ping', ['-c', '1', '-W', '1', h.a.mesh4])).code === 0, 30_000, 50);
  const ms = ok ? Date.now() - started : NaN;
  b.kill('SIGTERM');
  await waitFor(() => b.exitCode !== null, 5000);
  return ms;
}

async function main(): Promise<void> {
  await withBenchLab(['ping'], async (lab) => {
    const h = await twoHosts(lab);
    const nsC = await lab.ns('c');
    await lab.link(nsC, '198.51.100.3/24', h.a.ns, '198.51.100.1/24');
    const a = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { endpoint: false })), h.a.iface);
    const bConf = lab.file('b.conf', meshConfig(h.b, h.a));
    const quiet: number[] = [];
    for (let i = 0; i < TRIALS; i++) quiet.push(await timeToFirstPing(lab, h, bConf));

    const drops0 = JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout).drops.outside;
    const cpu0 = cpuSeconds(a.pid!);
    const t0 = Date.now();
    const flooder = lab.spawn(nsC, process.execPath, [FLOODER_JS, h.a.keys.pub, '198.51.100.1', '51820', String(SECONDS)]);
    await sleep(2000);
    const flooded: number[] = [];
    for (let i = 0; i < TRIALS && Date.now() - t0 < (SECONDS - 2) * 1000; i++) flooded.push(await timeToFirstPing(lab, h, bConf));
    await waitFor(() => flooder.exitCode !== null, (SECONDS + 10) * 1000);
    const cpu = (100 * (cpuSeconds(a.pid!) - cpu0)) / ((Date.now() - t0) / 1000);
    const drops1 = JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout).drops.outside;
    const delta = Object.fromEntries(Object.keys(drops1).map((k) => [k, drops1[k] - drops0[k]]).filter(([, v]) => (v as number) > 0));
    const sent = Number(/sent (\d+)/.exec(flooder.log.join(''))?.[1] ?? 0);
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { floodSeconds: SECONDS, trials: TRIALS, flood: 'mac1-valid initiations from 256 stranger keys, one source address, no mac2 retries' },
      initiationsSent: sent,
      floodRatePerSecond: sent / SECONDS,
      timeToFirstPingMs: { quiet: { median: median(quiet), all: quiet }, underFlood: { median: median(flooded), all: flooded } },
      cpuPercentOfACoreDuringFlood: cpu,
      dropsDuringFlood: delta,
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`wrote ${writeResult('flood', result)}\n`);
  });
}

void main();
