// The mesh lab lives in src/lab (bench/mesh uses it too); tests import it from here, with the steps
// the mesh tests share (an admin host and its relay, a host invited in), asserted as they go.
import type { Test } from 'tap';
import { readFileSync, statSync } from 'node:fs';
import type { Lab } from './lab.js';
import type { NatHost } from '../../src/lab/nat-world.js';
import { addressIn, hostConfig, joinMesh, meshRelay, pingWithin, type MeshLab } from '../../src/lab/mesh-world.js';

export * from '../../src/lab/mesh-world.js';

export interface Member {
  h: NatHost;
  file: string;
  addr: string;
  proc: Awaited<ReturnType<Lab['meshd']>>;
}

/** mesh init on h1 (admin), the relay, h1 up. */
export async function adminUp(m: MeshLab, t: Test): Promise<{ admin: Member; meshKey: string }> {
  const h = m.hosts[0];
  const file = hostConfig(m, h, [0], undefined, true);
  const init = await m.lab.cli(['mesh', 'init', file, '--name', 'admin', '--json']);
  t.equal(init.code, 0, init.stderr);
  const r = JSON.parse(init.stdout) as { meshKey: string; adminKeyFile: string; serial: number };
  t.equal(statSync(r.adminKeyFile).mode & 0o777, 0o600, 'the admin key is 0600');
  t.match(readFileSync(file, 'utf8'), new RegExp(`^MeshKey = ${r.meshKey.replace(/[+/]/g, '\\$&')}$`, 'm'), 'MeshKey is in [Interface]');
  t.equal(r.serial, 1, 'roster serial 1');
  await meshRelay(m, 0, r.meshKey);
  const proc = await m.lab.meshd(h.ns, file, h.iface);
  return { admin: { h, file, addr: h.mesh4, proc }, meshKey: r.meshKey };
}

export async function inviteAndJoin(m: MeshLab, admin: Member, h: NatHost, name: string, t: Test, groups?: string): Promise<Member> {
  const inv = await m.lab.cli(['invite', admin.file, '--name', name, ...(groups ? ['--groups', groups] : [])]);
  t.equal(inv.code, 0, `invite ${name}: ${inv.stderr}`);
  const j = await joinMesh(m, h, inv.stdout.trim());
  const text = readFileSync(j.file, 'utf8');
  t.notMatch(text, /\[Peer\]/, `${name}'s config names no other host`);
  t.match(text, /^MeshKey = /m, `${name}'s config has the MeshKey`);
  t.match(j.stdout, /roster serial \d+ \(\d+ members\) cached/, `${name} has the roster in hand`);
  const proc = await m.lab.meshd(h.ns, j.file, h.iface);
  return { h, file: j.file, addr: addressIn(j.file), proc };
}

export async function allReach(m: MeshLab, members: Member[], t: Test, withinMs: number, what: string): Promise<void> {
  const pairs: [Member, Member][] = [];
  for (const a of members) for (const b of members) if (a !== b) pairs.push([a, b]);
  const took = await Promise.all(pairs.map(([a, b]) => pingWithin(m, a.h, b.addr, withinMs)));
  pairs.forEach(([a, b], i) => t.ok(took[i] !== null, `${what}: ${a.h.name} reaches ${b.h.name} (${took[i]} ms)`));
  if (process.env.MESH_DEBUG && took.some((x) => x === null || x > 1000)) for (const x of members) console.error(`--- ${x.h.name}\n${x.proc.log.join('')}`); // MESH_DEBUG=1 (and MESHD_LOG_LEVEL=debug): the daemons' logs when a pair was slow
}

