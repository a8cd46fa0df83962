// A small internet in network namespaces for NAT traversal: a bridge ("inet", 203.0.113.0/24),
// a relay host with two addresses (two STUN servers), and hosts A and B each behind its own NAT
// router (nftables). Used by the NAT tests, the benchmarks and `meshd demo`.
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { generatePrivateKey, keyToBase64, publicKeyOf } from '../crypto/keys.js';
import type { Lab } from './netns-lab.js';

/**
 * eim: endpoint-independent mapping (plain masquerade); symmetric: a new port per destination;
 * udp-blocked: no UDP leaves the LAN; leaky: plain masquerade whose router does not drop unsolicited
 * UDP to its own WAN address, so a peer's early punch is claimed by the router's conntrack and the
 * host's mapping toward that peer gets another port (DESIGN.md §8: a real-world router behaviour).
 */
export type NatKind = 'eim' | 'symmetric' | 'udp-blocked' | 'leaky';
export const NAT_KINDS: readonly NatKind[] = ['eim', 'symmetric', 'udp-blocked', 'leaky'];

export interface NatHost {
  name: string;
  ns: string;
  router: string;
  iface: string;
  lanAddr: string;
  routerLan: string;
  wanAddr: string;
  wanDev: string;
  lanDev: string;
  mesh4: string;
  mesh6: string;
  priv: string;
  pub: string;
  kind: NatKind;
}

export interface NatWorld {
  lab: Lab;
  inet: string;
  relayNs: string;
  relayAddrs: [string, string];
  relayUrl: string;
  cert: string;
  key: string;
  a: NatHost;
  b: NatHost;
}

export const RELAY_PORT = 8443;

function keys(): { priv: string; pub: string } {
  const k = generatePrivateKey((n) => new Uint8Array(randomBytes(n)));
  return { priv: keyToBase64(k), pub: keyToBase64(publicKeyOf(k)) };
}

async function must(p: Promise<{ code: number; stderr: string }>, what: string): Promise<void> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what}: ${r.stderr.trim()}`);
}

export async function natWorld(lab: Lab, kinds: [NatKind, NatKind]): Promise<NatWorld> {
  const inet = await lab.switch('i');
  const relayNs = await lab.ns('r');
  const relayDev = await lab.attach(relayNs, '203.0.113.10/24', inet);
  await must(lab.exec(relayNs, 'ip', ['addr', 'add', '203.0.113.11/24', 'dev', relayDev]), 'second relay address');

  const host = (name: string, n: number, kind: NatKind) => natHost(lab, inet, name, n, kind);
  const a = await host('a', 1, kinds[0]);
  const b = await host('b', 2, kinds[1]);

  const { cert, key } = await lab.selfSignedCert(['203.0.113.10']);
  return { lab, inet, relayNs, relayAddrs: ['203.0.113.10', '203.0.113.11'], relayUrl: `wss://203.0.113.10:${RELAY_PORT}/`, cert, key, a, b };
}


/** A host `name` behind its own NAT router of `kind`, on the internet switch `inet`: LAN 10.N.0.0/24, WAN 203.0.113.N. */
export async function natHost(lab: Lab, inet: string, name: string, n: number, kind: NatKind): Promise<NatHost> {
  const router = await lab.ns(`${name}r`);
  const ns = await lab.ns(name);
  await must(lab.exec(router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']), 'ip_forward');
  const wanAddr = `203.0.113.${n}`;
  const wanDev = await lab.attach(router, `${wanAddr}/24`, inet);
  const [lanDev, hostDev] = await lab.link(router, `10.${n}.0.1/24`, ns, `10.${n}.0.2/24`);
  await must(lab.exec(ns, 'ip', ['route', 'add', 'default', 'via', `10.${n}.0.1`, 'dev', hostDev]), 'default route');
  const h: NatHost = {
    name,
    ns,
    router,
    iface: `${lab.id}${name}`,
    lanAddr: `10.${n}.0.2`,
    routerLan: `10.${n}.0.1`,
    wanAddr,
    wanDev,
    lanDev,
    mesh4: `10.77.0.${n}`,
    mesh6: `fd77::${n}`,
    ...keys(),
    kind,
  };
  await setNat(lab, h, kind);
  return h;
}

/**
 * (Re)writes a router's NAT: masquerade on the WAN (fully-random for a symmetric NAT; `portRange`
 * forces new mappings), drop unsolicited UDP to the router itself, and for 'udp-blocked' drop all
 * UDP from the LAN. Flushes conntrack so old mappings go.
 */
export async function setNat(lab: Lab, h: NatHost, kind: NatKind, portRange?: string): Promise<void> {
  h.kind = kind;
  const masq =
    kind === 'symmetric'
      ? 'masquerade fully-random'
      : portRange
        ? `meta l4proto { tcp, udp } masquerade to :${portRange}; oifname "${h.wanDev}" masquerade`
        : 'masquerade';
  const rules = `flush ruleset
table ip nat {
  chain postrouting { type nat hook postrouting priority 100; oifname "${h.wanDev}" ${masq}; }
}
table inet filter {
  chain input { type filter hook input priority 0; ${kind === 'leaky' ? '' : `iifname "${h.wanDev}" meta l4proto udp drop;`} }
  chain forward { type filter hook forward priority 0; ${kind === 'udp-blocked' ? `iifname "${h.lanDev}" meta l4proto udp drop;` : ''} }
}
`;
  await must(lab.exec(h.router, 'nft', ['-f', lab.file(`${h.router}.nft`, rules)]), `nft on ${h.router}`);
  await lab.exec(h.router, 'conntrack', ['-F']);
}

/** Mappings a port-block NAT pins, for a test that must not depend on chance (setPortBlockNat). */
export interface PortBlockPins {
  /** The STUN servers' addresses: towards each, from `sport`, its own port (what the host announces). */
  stun: string[];
  /**
   * Those ports, one per server: by default the block's first ones (FIRST, FIRST+1, …). Two equal
   * ones make the symmetric NAT's two mappings agree, as a random pick from a block can by chance.
   */
  stunPorts?: number[];
  /** The host's own port `sport` towards `peerWan` gets the block's last port. */
  peerWan: string;
  sport: number;
}

/**
 * Makes `h`'s router a symmetric NAT that hands out UDP ports from the block FIRST–FIRST+SIZE−1 only
 * (a carrier-grade NAT's per-subscriber block), fully-random inside it. With `pin`, some mappings
 * are pinned (PortBlockPins), and everything else (birthday probing's sockets, any other socket's
 * STUN requests) draws from the rest of the block, the pinned STUN ports inside it included.
 */
export async function setPortBlockNat(lab: Lab, h: NatHost, o: { first: number; size: number; pin?: PortBlockPins }): Promise<void> {
  h.kind = 'symmetric';
  const last = o.first + o.size - 1;
  const pin = o.pin;
  const pins = pin
    ? [
        ...pin.stun.map((addr, i) => `oifname "${h.wanDev}" ip daddr ${addr} udp sport ${pin.sport} masquerade to :${pin.stunPorts?.[i] ?? o.first + i};`),
        `oifname "${h.wanDev}" ip daddr ${pin.peerWan} udp sport ${pin.sport} masquerade to :${last};`,
      ].join('\n    ')
    : '';
  const rules = `flush ruleset
table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100;
    ${pins}
    oifname "${h.wanDev}" meta l4proto udp masquerade to :${o.first}-${pin ? last - 1 : last} fully-random;
    oifname "${h.wanDev}" masquerade;
  }
}
table inet filter {
  chain input { type filter hook input priority 0; iifname "${h.wanDev}" meta l4proto udp drop; }
}
`;
  await must(lab.exec(h.router, 'nft', ['-f', lab.file(`${h.router}-block.nft`, rules)]), `nft on ${h.router}`);
  await lab.exec(h.router, 'conntrack', ['-F']);
}

/**
 * Makes `h`'s router a symmetric NAT that hands out UDP ports in order: every new mapping, whatever
 * its destination, takes the next port of FIRST–FIRST+SIZE−1 (a counter shared by every host behind
 * it, as many home routers and some carrier-grade NATs do). Linux's own source NAT starts its search
 * at a random offset; an nftables counter (`numgen inc`) through a map gives the order.
 */
export async function setSequentialNat(lab: Lab, h: NatHost, o: { first: number; size: number }): Promise<void> {
  h.kind = 'symmetric';
  const ports = Array.from({ length: o.size }, (_, i) => `${i} : ${o.first + i}`).join(', ');
  const rules = `flush ruleset
table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100;
    oifname "${h.wanDev}" meta l4proto udp snat to ${h.wanAddr} : numgen inc mod ${o.size} map { ${ports} };
    oifname "${h.wanDev}" masquerade;
  }
}
table inet filter {
  chain input { type filter hook input priority 0; iifname "${h.wanDev}" meta l4proto udp drop; }
}
`;
  await must(lab.exec(h.router, 'nft', ['-f', lab.file(`${h.router}-sequential.nft`, rules)]), `nft on ${h.router}`);
  await lab.exec(h.router, 'conntrack', ['-F']);
}

/**
 * Refuses (or lets through again) TCP from `h`'s network at its router: `h` cannot reach the relay,
 * so it is never relayed and no birthday attempt runs, while its UDP (STUN) passes.
 */
export async function holdOffRelay(lab: Lab, h: NatHost, hold: boolean): Promise<void> {
  const rules = `table inet norelay {\n  chain forward {\n    type filter hook forward priority -5;\n    iifname "${h.lanDev}" meta l4proto tcp reject with tcp reset;\n  }\n}\n`;
  await must(hold ? lab.exec(h.router, 'nft', ['-f', lab.file(`${h.router}-norelay.nft`, rules)]) : lab.exec(h.router, 'nft', ['delete', 'table', 'inet', 'norelay']), `nft on ${h.router}`);
}

/** `count` one-datagram UDP flows from `h`, each from a new socket, to port 9 of `to`: each takes a mapping in `h`'s NAT. */
export async function otherFlows(lab: Lab, h: NatHost, to: string, count: number): Promise<void> {
  const script = `import socket\nfor i in range(${count}):\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n  s.sendto(b'x', ('${to}', 9))\n  s.close()\n`;
  await must(lab.exec(h.ns, 'python3', ['-c', script]), `python3 in ${h.ns}`);
}

/**
 * Other hosts behind `h`'s NAT opening new flows all the time: `perSecond` one-datagram UDP flows a
 * second, each from a new socket, to port 9 of `to`, until the process returned is killed.
 */
export function steadyFlows(lab: Lab, h: NatHost, to: string, perSecond: number): ChildProcess {
  const script = `import socket, time\nwhile True:\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n  s.sendto(b'x', ('${to}', 9))\n  s.close()\n  time.sleep(${1 / perSecond})\n`;
  return lab.spawn(h.ns, 'python3', ['-c', script]);
}

/**
 * A relay farther away: a TCP proxy in the relay's namespace, on port RELAY_PORT + 1 of its first
 * address, that holds every chunk `delayMs` each way before passing it on (this kernel has no netem).
 * The world's relay URL points at it from now on; start the daemons after.
 */
export function slowRelay(w: NatWorld, delayMs: number): ChildProcess {
  const script = `
const net = require('node:net');
const pipe = (from, to) => {
  from.on('data', (d) => setTimeout(() => to.destroyed || to.write(d), ${delayMs}));
  from.on('end', () => setTimeout(() => to.end(), ${delayMs}));
  from.on('error', () => to.destroy());
};
net.createServer((c) => {
  const r = net.connect(${RELAY_PORT}, '${w.relayAddrs[0]}');
  pipe(c, r);
  pipe(r, c);
}).listen(${RELAY_PORT + 1}, '${w.relayAddrs[0]}');
`;
  w.relayUrl = `wss://${w.relayAddrs[0]}:${RELAY_PORT + 1}/`;
  return w.lab.spawn(w.relayNs, process.execPath, ['-e', script]);
}

/** Cuts (or restores) UDP between the two routers' WAN addresses, as a path failure. */
export async function cutUdpBetweenRouters(w: NatWorld, cut: boolean): Promise<void> {
  const r = w.a.router;
  if (cut) {
    const rules = `table inet cut {
  chain forward { type filter hook forward priority -10; ip daddr ${w.b.wanAddr} meta l4proto udp drop; ip saddr ${w.b.wanAddr} meta l4proto udp drop; }
}
`;
    await must(w.lab.exec(r, 'nft', ['-f', w.lab.file(`${r}-cut.nft`, rules)]), 'nft cut');
  } else {
    await must(w.lab.exec(r, 'nft', ['delete', 'table', 'inet', 'cut']), 'nft uncut');
  }
}

export function relayArgs(w: NatWorld, extra: string[] = []): string[] {
  return [
    '--listen', `${w.relayAddrs[0]}:${RELAY_PORT}`,
    '--stun', `${w.relayAddrs[0]}:3478`,
    '--stun', `${w.relayAddrs[1]}:3478`,
    '--tls-cert', w.cert,
    '--tls-key', w.key,
    ...extra,
  ];
}

/** A host's config: only the peer's key and the relay; no Endpoint anywhere. */
export function natConfig(w: NatWorld, self: NatHost, other: NatHost, extra: string[] = []): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.priv}`,
    `Address = ${self.mesh4}/24, ${self.mesh6}/64`,
    'ListenPort = 51820',
    `Relay = ${w.relayUrl}`,
    `RelayCAFile = ${w.cert}`,
    `STUN = ${w.relayAddrs[0]}:3478, ${w.relayAddrs[1]}:3478`,
    ...extra,
    '',
    '[Peer]',
    `Name = ${other.name === 'a' ? 'alice' : 'bob'}`,
    `PublicKey = ${other.pub}`,
    `AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`,
    '',
  ].join('\n');
}
