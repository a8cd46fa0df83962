// A small internet for relay tests: a bridge, hosts A and B, one or two relays; nftables on the
// hosts can drop all direct UDP between A and B so that only the relay (TCP) connects them.
import { Lab } from './lab.js';
import { keyPair, type KeyPair } from './keys.js';
import type { Host } from './two-hosts.js';

export interface RelayLab {
  lab: Lab;
  net: string;
  a: Host;
  b: Host;
  relayNs: string[];
  relayAddr: string[];
  cert: string;
  key: string;
}

export const RELAY_PORT = 8443;

export async function relayLab(lab: Lab, relays = 1): Promise<RelayLab> {
  const net = await lab.switch('n');
  const mk = async (suffix: string, n: number): Promise<Host> => {
    const ns = await lab.ns(suffix);
    await lab.attach(ns, `192.0.2.${n}/24`, net);
    return { ns, iface: `${lab.id}${suffix}`, underlay: `192.0.2.${n}`, mesh4: `10.77.0.${n}`, mesh6: `fd77::${n}`, keys: keyPair() };
  };
  const a = await mk('a', 1);
  const b = await mk('b', 2);
  const relayNs: string[] = [];
  const relayAddr: string[] = [];
  for (let i = 0; i < relays; i++) {
    const ns = await lab.ns(`r${i}`);
    const addr = `192.0.2.${10 + i}`;
    await lab.attach(ns, `${addr}/24`, net);
    relayNs.push(ns);
    relayAddr.push(addr);
  }
  const { cert, key } = await lab.selfSignedCert(relayAddr); // names every relay address
  return { lab, net, a, b, relayNs, relayAddr, cert, key };
}

/** Drops every UDP datagram between A and B (both directions), in both hosts' nftables. */
export async function blockDirectUdp(rl: RelayLab): Promise<void> {
  for (const [self, other] of [
    [rl.a, rl.b],
    [rl.b, rl.a],
  ]) {
    const rules = `table inet meshtest {
  chain out { type filter hook output priority 0; ip daddr ${other.underlay} meta l4proto udp drop; }
  chain in { type filter hook input priority 0; ip saddr ${other.underlay} meta l4proto udp drop; }
}
`;
    const f = rl.lab.file(`${self.iface}.nft`, rules);
    const r = await rl.lab.exec(self.ns, 'nft', ['-f', f]);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
  }
}

export function relayArgs(rl: RelayLab, i: number, tls: boolean, extra: string[] = []): string[] {
  return [
    '--listen', `${rl.relayAddr[i]}:${RELAY_PORT}`,
    '--stun', `${rl.relayAddr[i]}:3478`,
    ...(tls ? ['--tls-cert', rl.cert, '--tls-key', rl.key] : []),
    ...extra,
  ];
}

export function relayUrl(rl: RelayLab, i: number, tls: boolean): string {
  return `${tls ? 'wss' : 'ws'}://${rl.relayAddr[i]}:${RELAY_PORT}/`;
}

/** A config for `self` reaching `other` only through relays (no Endpoint unless asked). */
export function relayConfig(rl: RelayLab, self: Host, other: Host, urls: string[], o: { endpoint?: boolean; tls?: boolean } = {}): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.priv}`,
    `Address = ${self.mesh4}/24, ${self.mesh6}/64`,
    'ListenPort = 51820',
    ...urls.map((u) => `Relay = ${u}`),
    ...(o.tls ? [`RelayCAFile = ${rl.cert}`] : []),
    '',
    '[Peer]',
    `PublicKey = ${other.keys.pub}`,
    `AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`,
    ...(o.endpoint ? [`Endpoint = ${other.underlay}:51820`] : []),
    '',
  ].join('\n');
}

export type { KeyPair };

/** A value from a Prometheus text exposition (`name` with its labels, e.g. `x_total{reason="y"}`), NaN if absent. */
export function promMetric(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+(?:\\.\\d+)?)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}
