// Throughput benchmark: iperf3 TCP between two network namespaces over raw veth, through meshd,
// and through Debian's wireguard-go, in the same run. Prints a table and writes bench/results/*.json.
//   BENCH_SECONDS (default 5), BENCH_REPS (default 3), BENCH_MTU (default 1420)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { Lab, labUnavailable, waitFor } from '../test/helpers/lab.js';
import { REPO_ROOT } from '../test/helpers/vectors.js';
import { meshConfig, twoHosts, type Host, type TwoHosts } from '../test/helpers/two-hosts.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const MTU = Number(process.env.BENCH_MTU ?? 1420);

interface Sample {
  bitsPerSecond: number;
  retransmits: number;
}

async function iperf(lab: Lab, client: string, server: string, addr: string): Promise<Sample> {
  await lab.exec(server, 'iperf3', ['-s', '-D', '-1']);
  await new Promise((r) => setTimeout(r, 300));
  const r = await lab.exec(client, 'iperf3', ['-c', addr, '-t', String(SECONDS), '-J'], (SECONDS + 30) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 500)}`);
  const j = JSON.parse(r.stdout);
  return { bitsPerSecond: j.end.sum_received.bits_per_second, retransmits: j.end.sum_sent.retransmits ?? 0 };
}

async function wireguardGoPair(h: TwoHosts): Promise<void> {
  const { lab } = h;
  const setup = async (self: Host, other: Host) => {
    const iface = `${self.iface}w`;
    lab.spawn(self.ns, 'wireguard-go', [iface], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' });
    if (!(await waitFor(async () => (await lab.run('wg', ['show', iface])).code === 0, 10_000))) throw new Error('wireguard-go did not start');
    const conf = lab.file(
      `${iface}.conf`,
      `[Interface]\nPrivateKey = ${self.keys.priv}\nListenPort = 51821\n[Peer]\nPublicKey = ${other.keys.pub}\nAllowedIPs = 10.78.0.${other.underlay.split('.')[3]}/32\nEndpoint = ${other.underlay}:51821\n`,
    );
    await lab.exec(self.ns, 'wg', ['setconf', iface, conf]);
    await lab.exec(self.ns, 'ip', ['addr', 'add', `10.78.0.${self.underlay.split('.')[3]}/24`, 'dev', iface]);
    await lab.exec(self.ns, 'ip', ['link', 'set', iface, 'mtu', String(MTU), 'up']);
  };
  await setup(h.a, h.b);
  await setup(h.b, h.a);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function main(): Promise<void> {
  const why = labUnavailable(['iperf3', 'wireguard-go', 'wg']);
  if (why) {
    process.stderr.write(`bench: cannot run: ${why}\n`);
    process.exit(1);
  }
  const teardowns: (() => unknown)[] = [];
  const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
  try {
    const h = await twoHosts(lab);
    const extra = `MTU = ${MTU}`;
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface);
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface);
    await wireguardGoPair(h);
    const warm = async (addr: string) => lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', addr]);
    await warm(h.b.mesh4);
    await warm('10.78.0.2');

    const paths: [string, string][] = [
      ['veth', h.b.underlay],
      ['meshd', h.b.mesh4],
      ['wireguard-go', '10.78.0.2'],
    ];
    const samples: Record<string, Sample[]> = { veth: [], meshd: [], 'wireguard-go': [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, addr] of paths) {
        const s = await iperf(lab, h.a.ns, h.b.ns, addr);
        samples[name].push(s);
        process.stderr.write(`rep ${rep + 1}/${REPS} ${name}: ${(s.bitsPerSecond / 1e9).toFixed(3)} Gbit/s\n`);
      }
    }
    const summary = Object.fromEntries(
      Object.entries(samples).map(([k, v]) => {
        const bps = v.map((s) => s.bitsPerSecond);
        return [k, { medianGbps: median(bps) / 1e9, minGbps: Math.min(...bps) / 1e9, maxGbps: Math.max(...bps) / 1e9, retransmits: v.map((s) => s.retransmits) }];
      }),
    );
    const ratio = summary.meshd.medianGbps / summary['wireguard-go'].medianGbps;
    const offloads = execFileSync('ip', ['netns', 'exec', h.a.ns, 'sh', '-c', `ethtool -k ${(await lab.exec(h.a.ns, 'ip', ['-o', 'link', 'show', 'type', 'veth'])).stdout.split(':')[1]?.trim().split('@')[0]} 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-receive-offload|tx-checksumming):' || true`]).toString().trim();
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
      settings: { seconds: SECONDS, reps: REPS, mtu: MTU, streams: 1, aead: process.env.MESHD_AEAD ?? 'node-crypto' },
      vethOffloads: offloads || 'ethtool not installed',
      summary,
      meshdOverWireguardGo: ratio,
    };
    process.stdout.write('\npath            median Gbit/s   min–max\n');
    for (const [k, v] of Object.entries(summary)) {
      process.stdout.write(`${k.padEnd(15)} ${v.medianGbps.toFixed(3).padStart(13)}   ${v.minGbps.toFixed(3)}–${v.maxGbps.toFixed(3)}\n`);
    }
    process.stdout.write(`meshd / wireguard-go: ${ratio.toFixed(2)}\n`);
    const dir = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `throughput-${result.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    for (const f of teardowns) await f();
  }
}

void main();
