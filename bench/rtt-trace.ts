// Where a ping's round trip goes: per-hop delays through meshd and upstream wireguard-go, from
// tcpdump timestamps on the TUN and veth of each side (request in at the sender's TUN, out on its
// veth; in on the far veth, out on the far TUN; and back). Prints median per hop over N pings.
//   BENCH_PINGS (default 200), BENCH_INTERVAL (ping -i, default 0.01)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, twoHosts, type Host } from '../test/helpers/two-hosts.js';
import { median, withBenchLab } from './common.js';

const PINGS = Number(process.env.BENCH_PINGS ?? 200);
const INTERVAL = process.env.BENCH_INTERVAL ?? '0.01';
const UPSTREAM = process.env.BENCH_WIREGUARD_GO_UPSTREAM ?? join(packageRoot(), '..', 'shared', 'bin', 'wireguard-go-0.0.20250522');

/** Capture timestamps (seconds) of ICMP echo (request/reply) or UDP on one interface. */
function capture(ns: string, iface: string, filter: string): { stop: () => Promise<number[]> } {
  const p = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', iface, '-n', '-tt', '-l', '-Q', 'inout', '--immediate-mode', filter], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    stop: async () => {
      await sleep(300);
      p.kill('SIGINT');
      await new Promise((r) => p.once('exit', r));
      return out.split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0]));
    },
  };
}

async function main(): Promise<void> {
  await withBenchLab(['tcpdump', 'ping', 'wg'], async (lab) => {
    const h = await twoHosts(lab);
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b)), h.a.iface);
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface);
    const paths: { name: string; ifA: string; ifB: string; addr: string; port: number }[] = [{ name: 'meshd', ifA: h.a.iface, ifB: h.b.iface, addr: h.b.mesh4, port: 51820 }];
    if (existsSync(UPSTREAM)) {
      const setup = async (self: Host, other: Host, n: string) => {
        const iface = `${self.iface}u`;
        await lab.wireguardGo(self.ns, iface, UPSTREAM);
        const conf = lab.file(`${iface}.conf`, `[Interface]\nPrivateKey = ${self.keys.priv}\nListenPort = 51822\n[Peer]\nPublicKey = ${other.keys.pub}\nAllowedIPs = 10.79.0.${other === h.a ? 1 : 2}/32\nEndpoint = ${other.underlay}:51822\n`);
        await lab.exec(self.ns, 'wg', ['setconf', iface, conf]);
        await lab.exec(self.ns, 'ip', ['addr', 'add', `10.79.0.${n}/24`, 'dev', iface]);
        await lab.exec(self.ns, 'ip', ['link', 'set', iface, 'up']);
      };
      await setup(h.a, h.b, '1');
      await setup(h.b, h.a, '2');
      paths.push({ name: 'wg-upstream', ifA: `${h.a.iface}u`, ifB: `${h.b.iface}u`, addr: '10.79.0.2', port: 51822 });
    }
    const vethA = (await lab.exec(h.a.ns, 'sh', ['-c', "ip -o link show type veth | cut -d: -f2 | cut -d@ -f1 | tr -d ' '"])).stdout.trim();
    const vethB = (await lab.exec(h.b.ns, 'sh', ['-c', "ip -o link show type veth | cut -d: -f2 | cut -d@ -f1 | tr -d ' '"])).stdout.trim();
    for (const p of paths) await lab.exec(h.a.ns, 'ping', ['-c', '3', '-i', '0.2', p.addr]);
    // BENCH_WARMUP=1: a few seconds of traffic first, so the daemons' code is compiled and warm.
    if (process.env.BENCH_WARMUP === '1') for (const p of paths) await lab.exec(h.a.ns, 'ping', ['-c', '3000', '-i', '0.001', '-q', p.addr], 60_000);
    for (const p of paths) {
      const caps = [
        capture(h.a.ns, p.ifA, "icmp[0] = 8 or icmp[0] = 0"),
        capture(h.a.ns, vethA, `udp port ${p.port} and udp[8] = 4 and udp[4:2] > 100`),
        capture(h.b.ns, vethB, `udp port ${p.port} and udp[8] = 4 and udp[4:2] > 100`),
        capture(h.b.ns, p.ifB, "icmp[0] = 8 or icmp[0] = 0"),
      ];
      await sleep(1000);
      const r = await lab.exec(h.a.ns, 'ping', ['-c', String(PINGS), '-i', INTERVAL, '-q', p.addr], 120_000);
      const [tunA, udpA, udpB, tunB] = await Promise.all(caps.map((c) => c.stop()));
      // Per ping: tunA[2k] request in, udpA[2k] out, udpB[2k] in, tunB[2k] out (to B's kernel),
      // tunB[2k+1] reply in, udpB[2k+1] out, udpA[2k+1] in, tunA[2k+1] out.
      const n = Math.min(tunA.length, udpA.length, udpB.length, tunB.length) >> 1;
      const hop = (f: (k: number) => number) => (median(Array.from({ length: n }, (_, k) => f(k))) * 1e6).toFixed(0).padStart(5);
      process.stdout.write(
        `${p.name.padEnd(12)} pings ${n}: A seal ${hop((k) => udpA[2 * k] - tunA[2 * k])} µs, wire ${hop((k) => udpB[2 * k] - udpA[2 * k])}, B open ${hop((k) => tunB[2 * k] - udpB[2 * k])}, B kernel ${hop((k) => tunB[2 * k + 1] - tunB[2 * k])}, B seal ${hop((k) => udpB[2 * k + 1] - tunB[2 * k + 1])}, wire ${hop((k) => udpA[2 * k + 1] - udpB[2 * k + 1])}, A open ${hop((k) => tunA[2 * k + 1] - udpA[2 * k + 1])} | ${r.stdout.trim().split('\n').at(-1)}\n`,
      );
    }
  });
}

void main();
