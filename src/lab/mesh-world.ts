// A mesh in network namespaces (DESIGN.md §9): hosts behind their own NAT routers, relays with
// --mesh-key in one "relay" namespace, and the hosts' configs. Used by test/integration/mesh and bench/mesh.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Lab, MESHD_BIN, sleep } from './netns-lab.js';
import { natHost, type NatHost, type NatKind } from './nat-world.js';
import type { DaemonStatus } from '../daemon/status.js';
import { controlRequest } from '../control/control.js';

export const RELAY_ADDRS = ['203.0.113.10', '203.0.113.11'] as const;
export const relayUrlOf = (i: number): string => `wss://${RELAY_ADDRS[i]}:8443/`;

export interface MeshLab {
  lab: Lab;
  inet: string;
  relayNs: string;
  cert: string;
  key: string;
  hosts: NatHost[];
}

async function must(p: Promise<{ code: number; stderr: string; stdout: string }>, what: string): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export async function meshLab(lab: Lab, kinds: NatKind[]): Promise<MeshLab> {
  const inet = await lab.switch('i');
  const relayNs = await lab.ns('r');
  const dev = await lab.attach(relayNs, `${RELAY_ADDRS[0]}/24`, inet);
  await must(lab.exec(relayNs, 'ip', ['addr', 'add', `${RELAY_ADDRS[1]}/24`, 'dev', dev]), 'second relay address');
  const hosts: NatHost[] = [];
  for (let i = 0; i < kinds.length; i++) hosts.push(await natHost(lab, inet, `h${i + 1}`, i + 1, kinds[i]));
  const { cert, key } = await lab.selfSignedCert([...RELAY_ADDRS]);
  return { lab, inet, relayNs, cert, key, hosts };
}

/** A relay on RELAY_ADDRS[i]:8443 (STUN on :3478) carrying `meshKey`, its state in the lab dir. */
export function meshRelay(m: MeshLab, i: number, meshKey: string, extra: string[] = []): Promise<ChildProcess & { log: string[] }> {
  return m.lab.relay(m.relayNs, [
    '--listen', `${RELAY_ADDRS[i]}:8443`,
    '--stun', `${RELAY_ADDRS[i]}:3478`,
    '--tls-cert', m.cert,
    '--tls-key', m.key,
    '--mesh-key', meshKey,
    '--state-dir', join(m.lab.dir, `relay${i}-state`),
    ...extra,
  ]);
}

/** A config with no peers: this host's key and address, the relays (by index), and MeshKey if given. */
export function hostConfig(m: MeshLab, h: NatHost, relays: number[], meshKey?: string, v6 = false): string {
  return m.lab.file(
    `${h.iface}.conf`,
    [
      '[Interface]',
      `PrivateKey = ${h.priv}`,
      `Address = ${h.mesh4}/24${v6 ? `, ${h.mesh6}/64` : ''}`,
      'ListenPort = 51820',
      ...relays.map((i) => `Relay = ${relayUrlOf(i)}`),
      `RelayCAFile = ${m.cert}`,
      `STUN = ${relays.map((i) => `${RELAY_ADDRS[i]}:3478`).join(', ')}`,
      ...(meshKey ? [`MeshKey = ${meshKey}`] : []),
      '',
    ].join('\n'),
  );
}

/** `meshd join LINE` inside the host's namespace; returns the written config's path. */
export async function joinMesh(m: MeshLab, h: NatHost, line: string): Promise<{ file: string; stdout: string }> {
  const dir = join(m.lab.dir, h.name);
  const stdout = await must(m.lab.exec(h.ns, process.execPath, [MESHD_BIN, 'join', line, '--interface', h.iface, '--config-dir', dir], 60_000), `join on ${h.name}`);
  return { file: join(dir, `${h.iface}.conf`), stdout };
}

export function status(h: NatHost): Promise<DaemonStatus> {
  return controlRequest(h.iface, { cmd: 'status' }) as Promise<DaemonStatus>;
}

/** The mesh address a host's config gives it (the first Address). */
export function addressIn(file: string): string {
  const m = /^Address = ([0-9.]+)\//m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`${file}: no Address`);
  return m[1];
}

/** One ping (1 s wait) until one is answered or time runs out; the ms it took, or null. */
export async function pingWithin(m: MeshLab, from: NatHost, to: string, timeoutMs: number): Promise<number | null> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    const r = await m.lab.exec(from.ns, 'ping', ['-c', '1', '-W', '1', to]);
    if (r.code === 0) return Date.now() - start;
    await sleep(100);
  }
  return null;
}

/** The relay's Prometheus text (from inside the relay namespace). */
export async function relayMetrics(m: MeshLab, i: number): Promise<string> {
  return must(m.lab.exec(m.relayNs, 'curl', ['-sk', `https://${RELAY_ADDRS[i]}:8443/metrics`]), 'relay metrics');
}
