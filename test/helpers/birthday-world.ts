// The NAT world the birthday-probing integration files share (test/integration/birthday*.test.ts):
// A and B each behind a router of a given kind, a relay, both daemons up; and what those files ask
// of the daemons (their status, a direct path found by probing).
import { type Test } from 'tap';
import { Lab, labUnavailable, waitFor } from './lab.js';
import { holdOffRelay, natConfig, natWorld, relayArgs, setSequentialNat, slowRelay, type NatKind, type NatWorld } from '../../src/lab/nat-world.js';

/** Why these files cannot run here (null: they can). */
export const birthdayLabMissing = (): string | null => labUnavailable(['nft', 'conntrack', 'openssl', 'ping']);

export interface PeerJson {
  path: { kind: string; endpoint?: string; via?: string };
  birthday: { role: string | null; why: string | null; state: string; attempts: number; probesSent: number; sockets: number } | null;
}
export interface StatusJson {
  peers: PeerJson[];
  counters: Record<string, number>;
  natMappingVariesByDestination: boolean | null;
  natPortsInOrder: boolean;
}

export async function world(t: Test, kinds: [NatKind, NatKind], extra: string[] = [], before?: (w: NatWorld) => Promise<void>): Promise<NatWorld & { logs: { a: string[]; b: string[] } }> {
  const lab = new Lab(t);
  const w = await natWorld(lab, kinds);
  await before?.(w);
  await lab.relay(w.relayNs, relayArgs(w));
  const a = await lab.meshd(w.a.ns, lab.file('a.conf', natConfig(w, w.a, w.b, extra)), w.a.iface);
  const b = await lab.meshd(w.b.ns, lab.file('b.conf', natConfig(w, w.b, w.a, extra)), w.b.iface);
  return { ...w, logs: { a: a.log, b: b.log } };
}

/** Both daemons' disco log lines, for a failure's diagnostics. */
export function discoLogs(w: { logs: { a: string[]; b: string[] } }): string {
  const pick = (log: string[]) => log.join('').split('\n').filter((l) => l.includes('"disco"')).join('\n');
  return `A (easy):\n${pick(w.logs.a)}\nB (hard):\n${pick(w.logs.b)}`;
}

export async function status(w: NatWorld, iface: string): Promise<StatusJson> {
  return JSON.parse((await w.lab.cli(['status', iface, '--json'])).stdout) as StatusJson;
}

/** Pings from A until both sides report a direct path found by birthday probing, or `ms` pass. */
export async function untilBirthdayDirect(w: NatWorld, ms: number): Promise<boolean> {
  return waitFor(async () => {
    await w.lab.exec(w.a.ns, 'ping', ['-c', '1', '-W', '1', w.b.mesh4]);
    const [a, b] = [await status(w, w.a.iface), await status(w, w.b.iface)];
    return a.peers[0].path.via === 'birthday probing' && b.peers[0].path.via === 'birthday probing';
  }, ms, 200);
}

/**
 * Waits for a path found by birthday probing within 15 s: the first attempt, or the quick retry after
 * a first attempt that met nobody (1.8 % of attempts with the default probes: docs/birthday.md).
 * A path that comes within 20 s more counts only if the easy side's status shows that retry (a
 * slow start can push the retry's meeting past 15 s); both missing (0.03 %) fails the test.
 */
export async function untilMet(w: NatWorld): Promise<{ ok: boolean; how: string }> {
  const start = Date.now();
  if (await untilBirthdayDirect(w, 15_000)) {
    const attempts = (await status(w, w.a.iface)).peers[0].birthday?.attempts ?? 0;
    return { ok: true, how: `in ${Date.now() - start} ms, attempt ${attempts}` };
  }
  const late = await untilBirthdayDirect(w, 20_000);
  const [a, b] = [await status(w, w.a.iface), await status(w, w.b.iface)];
  const attempts = a.peers[0].birthday?.attempts ?? 0;
  const paths = `A ${JSON.stringify(a.peers[0].path)} ${JSON.stringify(a.peers[0].birthday)}, B ${JSON.stringify(b.peers[0].path)} ${JSON.stringify(b.peers[0].birthday)}`;
  return { ok: late && attempts >= 2, how: `after ${Date.now() - start} ms, attempt ${attempts}; ${paths}` };
}

/**
 * Both routers hand out ports in order (A's from 20000, B's from 40000), the relay `relayDelayMs`
 * from each daemon (0: as it is); the daemons are up and know their NATs count up, and neither can
 * reach the relay until the caller lets it (holdOffRelay).
 */
export async function countingWorld(t: Test, relayDelayMs: number): Promise<NatWorld & { logs: { a: string[]; b: string[] } }> {
  const w = await world(t, ['symmetric', 'symmetric'], [], async (w) => {
    await setSequentialNat(w.lab, w.a, { first: 20000, size: 8192 });
    await setSequentialNat(w.lab, w.b, { first: 40000, size: 8192 });
    await holdOffRelay(w.lab, w.a, true);
    await holdOffRelay(w.lab, w.b, true);
    if (relayDelayMs > 0) slowRelay(w, relayDelayMs);
  });
  for (const h of [w.a, w.b]) t.ok(await waitFor(async () => (await status(w, h.iface)).natPortsInOrder, 15_000, 200), `${h.ns} knows its NAT hands out ports in order`);
  return w;
}
