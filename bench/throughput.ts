// Throughput benchmark: iperf3 TCP between two network namespaces over raw veth, through meshd,
// and through Debian's wireguard-go, in the same run. Prints a table and writes bench/results/*.json.
//   BENCH_SECONDS (default 5), BENCH_REPS (default 3), BENCH_MTU (default 1420)
import { execFileSync } from 'node:child_process';
import { waitFor } from '../src/lab/netns-lab.js';
import { meshConfig, twoHosts, type Host, type TwoHosts } from '../test/helpers/two-hosts.js';
import { iperf3, machine, withBenchLab, writeResult, type IperfSample } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const MTU = Number(process.env.BENCH_MTU ?? 1420);

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
  await withBenchLab(['iperf3', 'wireguard-go', 'wg'], async (lab) => {
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
    const samples: Record<string, IperfSample[]> = { veth: [], meshd: [], 'wireguard-go': [] };
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, addr] of paths) {
        const s = await iperf3(lab, h.a.ns, h.b.ns, addr, SECONDS);
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
      machine: machine(),
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
    process.stdout.write(`wrote ${writeResult('throughput', result)}\n`);
  });
}

void main();
