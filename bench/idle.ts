// Idle cost: one meshd with 1,000 configured peers, 100 of them connected (real WireGuard sessions
// with peers in another namespace) and then no traffic. After a settling period, the daemon's CPU
// (average over BENCH_IDLE_SECONDS) and its RSS. Writes bench/results/idle-*.json.
//   BENCH_IDLE_SECONDS (default 60), BENCH_IDLE_SETTLE (default 50), BENCH_PEERS (1000),
//   BENCH_CONNECTED (100)
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sleep, waitFor } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import { generatePrivateKey, keyToBase64, publicKeyOf } from '../src/crypto/keys.js';
import { twoHosts } from '../test/helpers/two-hosts.js';
import { cpuSeconds, machine, rssMiB, withBenchLab, writeResult } from './common.js';

const SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const SETTLE = Number(process.env.BENCH_IDLE_SETTLE ?? 50);
const PEERS = Number(process.env.BENCH_PEERS ?? 1000);
const CONNECTED = Number(process.env.BENCH_CONNECTED ?? 100);
const BASE_PORT = 40000;
const HELPER_JS = join(packageRoot(), 'dist', 'bench', 'idle-peers.js');

async function main(): Promise<void> {
  await withBenchLab(['ip'], async (lab) => {
    const h = await twoHosts(lab);
    const rng = (n: number) => new Uint8Array(randomBytes(n));
    const peerKeys = Array.from({ length: PEERS }, () => generatePrivateKey(rng));
    const lines = ['[Interface]', `PrivateKey = ${h.a.keys.priv}`, 'Address = 10.77.0.1/16', 'ListenPort = 51820', ''];
    peerKeys.forEach((k, i) => {
      lines.push('[Peer]', `PublicKey = ${keyToBase64(publicKeyOf(k))}`, `AllowedIPs = 10.77.${100 + (i >> 8)}.${i & 255}/32`);
      if (i < CONNECTED) lines.push(`Endpoint = ${h.b.underlay}:${BASE_PORT + i}`);
      lines.push('');
    });
    const daemon = await lab.meshd(h.a.ns, lab.file('idle.conf', lines.join('\n')), h.a.iface);
    const keysFile = lab.file('peer.keys', peerKeys.slice(0, CONNECTED).map(keyToBase64).join('\n') + '\n');
    const helper = lab.spawn(h.b.ns, process.execPath, [HELPER_JS, h.a.keys.pub, `${h.a.underlay}:51820`, String(BASE_PORT), keysFile]);
    if (!(await waitFor(() => helper.log.join('').includes('up '), 60_000))) throw new Error(`peers did not start: ${helper.log.join('')}`);
    const connected = async () =>
      (JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout).peers as { latestHandshake: number | null }[]).filter((p) => p.latestHandshake).length;
    if (!(await waitFor(async () => (await connected()) >= CONNECTED, 60_000, 500))) throw new Error(`only ${await connected()} peers connected`);
    process.stderr.write(`${CONNECTED} peers connected; settling ${SETTLE} s, then measuring ${SECONDS} s\n`);
    await sleep(SETTLE * 1000);
    const before = cpuSeconds(daemon.pid!);
    await sleep(SECONDS * 1000);
    const cpuPercent = (100 * (cpuSeconds(daemon.pid!) - before)) / SECONDS;
    const rss = rssMiB(daemon.pid!);
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { configuredPeers: PEERS, connectedPeers: CONNECTED, settleSeconds: SETTLE, measuredSeconds: SECONDS },
      connected: await connected(),
      idleCpuPercentOfACore: cpuPercent,
      rssMiB: rss,
    };
    process.stdout.write(`idle meshd, ${PEERS} configured / ${result.connected} connected peers: CPU ${cpuPercent.toFixed(2)} % of a core over ${SECONDS} s, RSS ${rss.toFixed(1)} MiB\n`);
    process.stdout.write(`wrote ${writeResult('idle', result)}\n`);
  });
}

void main();
