// What a config reload changes: a pure diff between the running config and the file's new one.
// Only the difference is applied; untouched peers keep their sessions and traffic.
import { keyId, keyToBase64, constantTimeEqual } from '../crypto/keys.js';
import type { MeshConfig, PeerConfig } from '../config/config.js';
import { formatCidr } from '../tunnel/cidr.js';

export interface ReloadPlan {
  privateKeyChanged: boolean;
  listenPortChanged: boolean;
  added: PeerConfig[];
  removed: PeerConfig[];
  changed: { before: PeerConfig; after: PeerConfig; what: string[] }[];
  /** Settings that only take effect on restart. */
  restartNeeded: string[];
}

const cidrs = (p: PeerConfig) => p.allowedIps.map(formatCidr).sort().join(',');
const ep = (p: PeerConfig) => (p.endpoint ? `${p.endpoint.host}:${p.endpoint.port}` : '');
const psk = (p: PeerConfig) => (p.presharedKey ? Buffer.from(p.presharedKey).toString('hex') : '');

export function planReload(before: MeshConfig, after: MeshConfig): ReloadPlan {
  const b = before.iface;
  const a = after.iface;
  const restartNeeded: string[] = [];
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  if (!same(b.addresses.map(formatCidr), a.addresses.map(formatCidr))) restartNeeded.push('Address');
  if (b.mtu !== a.mtu) restartNeeded.push('MTU');
  if (!same(b.dns, a.dns)) restartNeeded.push('DNS');
  if (b.table !== a.table) restartNeeded.push('Table');
  if (!same(b.relays, a.relays)) restartNeeded.push('Relay');
  if (!same(b.stun, a.stun)) restartNeeded.push('STUN');
  if (!same(b.relayCa?.toString('hex'), a.relayCa?.toString('hex'))) restartNeeded.push('RelayCAFile');
  if ((b.meshKey ? Buffer.from(b.meshKey).toString('hex') : '') !== (a.meshKey ? Buffer.from(a.meshKey).toString('hex') : '')) restartNeeded.push('MeshKey');
  if (b.domain !== a.domain) restartNeeded.push('Domain');
  if (b.splitDns !== a.splitDns) restartNeeded.push('SplitDNS');
  if (!same(b.metricsListen, a.metricsListen)) restartNeeded.push('MetricsListen');
  if (b.hardNatProbes !== a.hardNatProbes || b.hardNatProbeBudget !== a.hardNatProbeBudget || b.hardNatSockets !== a.hardNatSockets || b.hardNatProbesPerAttempt !== a.hardNatProbesPerAttempt) {
    restartNeeded.push('HardNatProbes');
  }
  if (b.fwMark !== a.fwMark) restartNeeded.push('FwMark (or wg set IFACE fwmark N)');
  if (!same([b.preUp, b.postUp, b.preDown, b.postDown], [a.preUp, a.postUp, a.preDown, a.postDown])) restartNeeded.push('PreUp/PostUp/PreDown/PostDown');

  const old = new Map(before.peers.map((p) => [keyId(p.publicKey), p]));
  const neu = new Map(after.peers.map((p) => [keyId(p.publicKey), p]));
  const added = after.peers.filter((p) => !old.has(keyId(p.publicKey)));
  const removed = before.peers.filter((p) => !neu.has(keyId(p.publicKey)));
  const changed: ReloadPlan['changed'] = [];
  for (const p of after.peers) {
    const o = old.get(keyId(p.publicKey));
    if (!o) continue;
    const what: string[] = [];
    if (cidrs(o) !== cidrs(p)) what.push('AllowedIPs');
    if (ep(o) !== ep(p)) what.push('Endpoint');
    if (psk(o) !== psk(p)) what.push('PresharedKey');
    if (o.persistentKeepalive !== p.persistentKeepalive) what.push('PersistentKeepalive');
    if (o.name !== p.name) what.push('Name');
    if (what.length) changed.push({ before: o, after: p, what });
  }
  return {
    privateKeyChanged: !constantTimeEqual(b.privateKey, a.privateKey),
    listenPortChanged: (b.listenPort ?? 0) !== (a.listenPort ?? 0),
    added,
    removed,
    changed,
    restartNeeded,
  };
}

export function summarize(plan: ReloadPlan): { added: string[]; removed: string[]; changed: string[]; privateKeyChanged: boolean; listenPortChanged: boolean; restartNeeded: string[] } {
  const label = (p: PeerConfig) => p.name ?? keyToBase64(p.publicKey);
  return {
    added: plan.added.map(label),
    removed: plan.removed.map(label),
    changed: plan.changed.map((c) => `${label(c.after)} (${c.what.join(', ')})`),
    privateKeyChanged: plan.privateKeyChanged,
    listenPortChanged: plan.listenPortChanged,
    restartNeeded: plan.restartNeeded,
  };
}
