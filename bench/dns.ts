// Name-server benchmark (issue: names and access policy): queries per second one daemon answers on
// its mesh address for a 1,000-member roster, and the latency percentiles, with a dnsperf-style
// client keeping a window of queries in flight (A, AAAA, PTR and NXDOMAIN names in turn), from the
// daemon's own namespace (what the host's resolver does) and from another member over the tunnel.
// Prints a table and writes bench/results/dns-*.json.
//   BENCH_SECONDS (default 5), BENCH_REPS (default 3), BENCH_WINDOWS (default "1,16,64")
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { generateMeshKey, meshKeyToBase64 } from '../src/crypto/ed25519.js';
import { generatePrivateKey, parsePublicKey, publicKeyOf } from '../src/crypto/keys.js';
import { signRoster, type RosterMember } from '../src/mesh/roster.js';
import { rosterFile } from '../src/config/config.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { packageRoot } from '../src/package-root.js';
import { controlRequest } from '../src/control/control.js';
import { twoHosts, type Host } from '../test/helpers/two-hosts.js';
import { cpuSeconds, machine, median, withBenchLab, writeResult } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const WINDOWS = (process.env.BENCH_WINDOWS ?? '1,16,64').split(',').map(Number);
const CLIENT = join(packageRoot(), 'dist', 'bench', 'dns-client.js');
const MEMBERS = 1000;
const rng = (n: number) => new Uint8Array(randomBytes(n));
const addr = (i: number) => `10.77.${i >> 8}.${i & 255}`;

interface Run {
  qps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  timeouts: number;
  rcodes: Record<string, number>;
  cpuPercent: number;
}

async function main(): Promise<void> {
  await withBenchLab(['ping'], async (lab) => {
    const h = await twoHosts(lab);
    const mk = generateMeshKey(rng);
    const members: RosterMember[] = [];
    const add = (name: string, pub: Uint8Array, i: number, endpoint: string | null) =>
      members.push({ name, publicKey: pub as RosterMember['publicKey'], addresses: [{ ...parseCidr(`${addr(i)}/32`)! }], groups: [], expiresMs: null, endpoint });
    add('alpha', parsePublicKey(h.a.keys.pub), 1, `${h.a.underlay}:51820`);
    add('beta', parsePublicKey(h.b.keys.pub), 2, `${h.b.underlay}:51820`);
    for (let i = 3; i <= MEMBERS; i++) add(`host-${i}`, publicKeyOf(generatePrivateKey(rng)), i, null);
    const signed = signRoster({ meshKey: mk.publicKey, serial: 1, issuedMs: Date.now(), domain: 'mesh', prefixes: [parseCidr('10.77.0.0/16')!], relays: [], stun: [], members, pending: [], policy: null }, mk.privateKey);
    const conf = (self: Host, i: number) => {
      const f = lab.file(`${self.iface}.conf`, ['[Interface]', `PrivateKey = ${self.keys.priv}`, `Address = ${addr(i)}/16`, 'ListenPort = 51820', `MeshKey = ${meshKeyToBase64(mk.publicKey)}`, 'SplitDNS = off', ''].join('\n'));
      writeFileSync(rosterFile(f), signed);
      return f;
    };
    const da = await lab.meshd(h.a.ns, conf(h.a, 1), h.a.iface);
    await lab.meshd(h.b.ns, conf(h.b, 2), h.b.iface);
    if ((await lab.exec(h.b.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', addr(1)])).code !== 0) throw new Error('no tunnel');
    const lines: string[] = [];
    for (let i = 1; i <= MEMBERS; i += 7) {
      const name = i === 1 ? 'alpha' : i === 2 ? 'beta' : `host-${i}`;
      lines.push(`${name}.mesh A`, `${name}.mesh AAAA`, `${i & 255}.${i >> 8}.77.10.in-addr.arpa PTR`, `nobody-${i}.mesh A`);
    }
    const names = lab.file('names.txt', lines.join('\n') + '\n');

    const results: Record<string, Run[]> = {};
    for (const [where, ns] of [['local', h.a.ns], ['over the tunnel', h.b.ns]] as const) {
      for (const w of WINDOWS) {
        const key = `${where}, window ${w}`;
        results[key] = [];
        for (let rep = 0; rep < REPS; rep++) {
          const before = cpuSeconds(da.pid!);
          const r = await lab.exec(ns, process.execPath, [CLIENT, addr(1), String(SECONDS), String(w), names], (SECONDS + 30) * 1000);
          if (r.code !== 0) throw new Error(`dns client: ${r.stderr}`);
          const j = JSON.parse(r.stdout) as Omit<Run, 'cpuPercent'>;
          results[key].push({ ...j, cpuPercent: ((cpuSeconds(da.pid!) - before) / SECONDS) * 100 });
          process.stderr.write(`${key}: ${j.qps.toFixed(0)} q/s, p99 ${j.p99.toFixed(2)} ms\n`);
        }
      }
    }
    const s = (await controlRequest(h.a.iface, { cmd: 'status' })) as { names: { answered: Record<string, number> } };
    process.stdout.write(`\nmeshd name server, ${MEMBERS}-member roster (A, AAAA, PTR, NXDOMAIN in turn; ${SECONDS} s × ${REPS}, medians)\n`);
    process.stdout.write('| client | in flight | queries/s | p50 | p90 | p99 | daemon CPU | timeouts |\n|---|---|---|---|---|---|---|---|\n');
    const rows = Object.entries(results).map(([key, runs]) => {
      const m = (k: keyof Omit<Run, 'rcodes'>) => median(runs.map((r) => r[k] as number));
      const row = { key, qps: m('qps'), p50: m('p50'), p90: m('p90'), p99: m('p99'), cpuPercent: m('cpuPercent'), timeouts: runs.reduce((a, r) => a + r.timeouts, 0) };
      const [where, win] = key.split(', window ');
      process.stdout.write(`| ${where} | ${win} | ${row.qps.toFixed(0)} | ${row.p50.toFixed(3)} ms | ${row.p90.toFixed(3)} ms | ${row.p99.toFixed(3)} ms | ${row.cpuPercent.toFixed(0)} % | ${row.timeouts} |\n`);
      return row;
    });
    process.stdout.write(`the daemon answered: ${JSON.stringify(s.names.answered)}\n`);
    const result = { date: new Date().toISOString(), machine: machine(), seconds: SECONDS, reps: REPS, members: MEMBERS, rows, results };
    process.stdout.write(`wrote ${writeResult('dns', result)}\n`);
  });
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
