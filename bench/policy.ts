// Access-policy benchmark (issue: names and access policy): iperf3 TCP between two meshd daemons of
// a 1,000-member roster, with no policy and with a 50-rule policy (the rule admitting the traffic
// last), rotating in the same run on the same daemons (the roster is swapped through the cache file
// and `meshd`'s control socket, as `meshd mesh policy` does). A third variant has no policy but a
// host firewall that tracks connections (`ct state established,related accept`, as most distros'
// firewalls and Docker load): the lab's namespaces have no conntrack otherwise, and a policy table
// is what turns it on there, for every packet of the namespace (the tunnel's UDP too). Also how long
// a daemon takes from the roster to the installed nftables table, and the CPU the two daemons use
// per Gbit/s.
// Prints a table and writes bench/results/policy-*.json.
//   BENCH_SECONDS (default 5), BENCH_REPS (default 3), BENCH_STREAMS (default "1,4")
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { generateMeshKey, meshKeyToBase64 } from '../src/crypto/ed25519.js';
import { generatePrivateKey, parsePublicKey, publicKeyOf } from '../src/crypto/keys.js';
import { signRoster, type RosterDoc, type RosterMember } from '../src/mesh/roster.js';
import { policyTableName, type Policy } from '../src/mesh/policy.js';
import { rosterFile } from '../src/config/config.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { controlRequest } from '../src/control/control.js';
import { waitFor } from '../src/lab/netns-lab.js';
import { twoHosts, type Host } from '../test/helpers/two-hosts.js';
import { cpuSeconds, iperf3, machine, median, withBenchLab, writeResult } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const STREAMS = (process.env.BENCH_STREAMS ?? '1,4').split(',').map(Number);
const MEMBERS = 1000;
const RULES = 50;
const rng = (n: number) => new Uint8Array(randomBytes(n));

function host(i: number): string {
  return `10.77.${i >> 8}.${i & 255}`;
}

/** 1,000 members: the two benchmark hosts and 998 others in 20 groups. */
function members(a: Host, b: Host): RosterMember[] {
  const out: RosterMember[] = [];
  const add = (name: string, pub: Uint8Array, i: number, groups: string[], endpoint: string | null) =>
    out.push({ name, publicKey: pub as RosterMember['publicKey'], addresses: [{ ...parseCidr(`${host(i)}/32`)! }], groups, expiresMs: null, endpoint });
  add('client', parsePublicKey(a.keys.pub), 1, ['bench-client', 'g0'], `${a.underlay}:51820`);
  add('server', parsePublicKey(b.keys.pub), 2, ['bench-server', 'g1'], `${b.underlay}:51820`);
  for (let i = 3; i <= MEMBERS; i++) add(`host-${i}`, publicKeyOf(generatePrivateKey(rng)), i, [`g${i % 20}`], null);
  return out;
}

/** 49 rules that do not admit the benchmark's traffic (groups, names, prefixes, port sets), then the one that does. */
function policy(): Policy {
  const rules = Array.from({ length: RULES - 1 }, (_, i) => ({
    from: i % 3 === 0 ? [`group:g${(i + 2) % 20}`, `host-${100 + i}`] : i % 3 === 1 ? [`10.77.${1 + (i % 3)}.0/24`] : [`group:g${(i + 5) % 20}`, `group:g${(i + 7) % 20}`],
    to: [`group:g${i % 20}`, `host-${200 + i}`],
    ports: [`tcp/${1000 + i}`, `tcp/${2000 + i}-${2010 + i}`, 'udp/53', ...(i % 4 === 0 ? ['icmp'] : [])],
  }));
  rules.push({ from: ['group:bench-client'], to: ['group:bench-server'], ports: ['tcp/5201', 'icmp'] });
  return { rules };
}

type Variant = 'none' | 'conntrack' | 'policy';
const VARIANTS: Variant[] = ['none', 'conntrack', 'policy'];
const HOST_FIREWALL = ['table inet bench_hostfw {', '  chain input {', '    type filter hook input priority 10; policy accept;', '    ct state established,related accept', '  }', '}', ''].join('\n');

interface Cell {
  gbps: number[];
  cpuPerGbps: number[];
}

async function main(): Promise<void> {
  await withBenchLab(['iperf3', 'ping', 'nft'], async (lab) => {
    const h = await twoHosts(lab);
    const mk = generateMeshKey(rng);
    const base: RosterDoc = { meshKey: mk.publicKey, serial: 1, issuedMs: Date.now(), domain: 'mesh', prefixes: [parseCidr('10.77.0.0/16')!], relays: [], stun: [], members: members(h.a, h.b), pending: [], policy: null };
    const conf = (self: Host) =>
      lab.file(`${self.iface}.conf`, ['[Interface]', `PrivateKey = ${self.keys.priv}`, `Address = ${self === h.a ? host(1) : host(2)}/16`, 'ListenPort = 51820', 'MTU = 1420', `MeshKey = ${meshKeyToBase64(mk.publicKey)}`, ''].join('\n'));
    const files = [conf(h.a), conf(h.b)];
    let serial = 1;
    const write = (p: Policy | null) => {
      const signed = signRoster({ ...base, serial, issuedMs: Date.now(), policy: p }, mk.privateKey);
      serial++;
      for (const f of files) writeFileSync(rosterFile(f), signed);
    };
    write(null);
    const da = await lab.meshd(h.a.ns, files[0], h.a.iface);
    const db = await lab.meshd(h.b.ns, files[1], h.b.iface);
    const pids = [da.pid!, db.pid!];
    const server = host(2);
    if ((await lab.exec(h.a.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', server])).code !== 0) throw new Error('no tunnel between the two members');
    const table = (x: Host) => lab.exec(x.ns, 'nft', ['list', 'table', 'inet', policyTableName(x.iface)]);

    const applyMs: number[] = [];
    /** New connections rule 50 admitted in each policy run (iperf3's control and data connections). */
    const admitted: number[] = [];
    const swap = async (p: Policy | null) => {
      write(p);
      const start = performance.now();
      for (const x of [h.a, h.b]) await controlRequest(x.iface, { cmd: 'roster' }, 30_000);
      const ok = await waitFor(async () => ((await table(h.b)).code === 0) === (p !== null), 20_000, 20);
      if (!ok) throw new Error(`the policy table on the server did not ${p ? 'appear' : 'go'}`);
      if (p) applyMs.push(performance.now() - start);
    };

    const fwFile = lab.file('hostfw.nft', HOST_FIREWALL);
    const hostFirewall = async (on: boolean) => {
      for (const x of [h.a, h.b]) {
        const r = on ? await lab.exec(x.ns, 'nft', ['-f', fwFile]) : await lab.exec(x.ns, 'nft', ['delete', 'table', 'inet', 'bench_hostfw']);
        if (on && r.code !== 0) throw new Error(`host firewall: ${r.stderr}`);
      }
    };
    const cells: Record<string, Record<Variant, Cell>> = {};
    for (const streams of STREAMS) {
      const cell = Object.fromEntries(VARIANTS.map((v) => [v, { gbps: [], cpuPerGbps: [] }])) as unknown as Record<Variant, Cell>;
      cells[`${streams}`] = cell;
      for (let rep = 0; rep < REPS; rep++) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length]);
        for (const variant of order) {
          await swap(variant === 'policy' ? policy() : null);
          await hostFirewall(variant === 'conntrack');
          const before = pids.map(cpuSeconds);
          const s = await iperf3(lab, h.a.ns, h.b.ns, server, SECONDS, streams);
          const used = pids.map(cpuSeconds).reduce((x, y, i) => x + y - before[i], 0);
          const gbps = s.bitsPerSecond / 1e9;
          cell[variant].gbps.push(gbps);
          cell[variant].cpuPerGbps.push(((used / SECONDS) * 100) / gbps);
          if (variant === 'policy') {
            const listed = (await table(h.b)).stdout;
            if (!/comment "rule 50"/.test(listed)) throw new Error('the table does not carry rule 50');
            const st = (await controlRequest(h.b.iface, { cmd: 'status' })) as { mesh: { policy: { accepted: Record<string, { packets: number }> } } };
            admitted.push(st.mesh.policy.accepted['50']?.packets ?? 0);
          }
          process.stderr.write(`${streams} stream(s), ${variant}: ${gbps.toFixed(2)} Gbit/s\n`);
        }
      }
    }
    const status = (await controlRequest(h.b.iface, { cmd: 'status' })) as { mesh: { members: number } };

    const rows = STREAMS.map((st) => {
      const c = cells[`${st}`];
      const none = median(c.none.gbps);
      const pol = median(c.policy.gbps);
      const ct = median(c.conntrack.gbps);
      return { streams: st, noneGbps: none, conntrackGbps: ct, policyGbps: pol, ratio: pol / none, ratioToConntrack: pol / ct, noneCpuPerGbps: median(c.none.cpuPerGbps), conntrackCpuPerGbps: median(c.conntrack.cpuPerGbps), policyCpuPerGbps: median(c.policy.cpuPerGbps) };
    });
    process.stdout.write(`\n${MEMBERS}-member roster, ${RULES}-rule policy vs none (iperf3 TCP, ${SECONDS} s × ${REPS}, medians; same daemons, rotating)\n`);
    process.stdout.write('| streams | no policy | no policy, host firewall with conntrack | 50 rules | 50 rules / no policy | 50 rules / conntrack firewall | CPU %·s per Gbit/s (none / conntrack / policy) |\n|---|---|---|---|---|---|---|\n');
    for (const r of rows) process.stdout.write(`| ${r.streams} | ${r.noneGbps.toFixed(2)} Gbit/s | ${r.conntrackGbps.toFixed(2)} Gbit/s | ${r.policyGbps.toFixed(2)} Gbit/s | ${r.ratio.toFixed(3)} | ${r.ratioToConntrack.toFixed(3)} | ${r.noneCpuPerGbps.toFixed(0)} / ${r.conntrackCpuPerGbps.toFixed(0)} / ${r.policyCpuPerGbps.toFixed(0)} |\n`);
    process.stdout.write(`roster → table installed on both hosts: median ${median(applyMs).toFixed(0)} ms (${applyMs.map((x) => x.toFixed(0)).join(', ')})\n`);
    process.stdout.write(`server: ${status.mesh.members} members; rule 50 admitted ${admitted.join(', ')} new connections in the policy runs (the traffic went through the table)\n`);
    const result = { date: new Date().toISOString(), machine: machine(), seconds: SECONDS, reps: REPS, members: MEMBERS, rules: RULES, rows, applyMs, admitted, cells };
    process.stdout.write(`wrote ${writeResult('policy', result)}\n`);
  });
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
