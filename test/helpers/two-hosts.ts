// Two hosts joined by a veth "underlay": the usual starting point of the integration tests.
import { join } from 'node:path';
import { Lab } from './lab.js';
import { keyPair, type KeyPair } from './keys.js';

export const TRANSFER_JS = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'tcp-transfer.js');
export const UDP_ECHO_JS = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'udp-echo.js');

export interface Host {
  ns: string;
  iface: string;
  underlay: string; // underlay IPv4 address
  mesh4: string;
  mesh6: string;
  keys: KeyPair;
}

export interface TwoHosts {
  lab: Lab;
  a: Host;
  b: Host;
}

export async function twoHosts(lab: Lab): Promise<TwoHosts> {
  const nsA = await lab.ns('a');
  const nsB = await lab.ns('b');
  await lab.link(nsA, '192.0.2.1/24', nsB, '192.0.2.2/24');
  const mk = (ns: string, n: number): Host => ({
    ns,
    iface: `${lab.id}${n === 1 ? 'a' : 'b'}`,
    underlay: `192.0.2.${n}`,
    mesh4: `10.77.0.${n}`,
    mesh6: `fd77::${n}`,
    keys: keyPair(),
  });
  return { lab, a: mk(nsA, 1), b: mk(nsB, 2) };
}

export interface ConfigOptions {
  listenPort?: number;
  endpoint?: boolean;
  /** The port in the peer's Endpoint = (default 51820). */
  endpointPort?: number;
  keepalive?: number;
  extraInterface?: string;
  /** Name = of the peer section. */
  peerName?: string;
}

/** A wg-quick style config for `self` with `other` as its one peer. */
export function meshConfig(self: Host, other: Host, o: ConfigOptions = {}): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.keys.priv}`,
    `Address = ${self.mesh4}/24, ${self.mesh6}/64`,
    `ListenPort = ${o.listenPort ?? 51820}`,
    ...(o.extraInterface ? [o.extraInterface] : []),
    '',
    '[Peer]',
    `PublicKey = ${other.keys.pub}`,
    ...(o.peerName ? [`Name = ${o.peerName}`] : []),
    `AllowedIPs = ${other.mesh4}/32, ${other.mesh6}/128`,
    ...(o.endpoint === false ? [] : [`Endpoint = ${other.underlay}:${o.endpointPort ?? 51820}`]),
    ...(o.keepalive ? [`PersistentKeepalive = ${o.keepalive}`] : []),
    '',
  ].join('\n');
}

/** Brings meshd up on both hosts, each with the other as peer (both with endpoints by default). */
export async function meshdBoth(h: TwoHosts, oa: ConfigOptions = {}, ob: ConfigOptions = {}) {
  const pa = await h.lab.meshd(h.a.ns, h.lab.file(`${h.a.iface}.conf`, meshConfig(h.a, h.b, oa)), h.a.iface);
  const pb = await h.lab.meshd(h.b.ns, h.lab.file(`${h.b.iface}.conf`, meshConfig(h.b, h.a, ob)), h.b.iface);
  return { pa, pb };
}

/** Runs a TCP transfer of `bytes` from `from` to `to`'s address; returns both sides' "<bytes> <sha>". */
export async function transfer(lab: Lab, fromNs: string, toNs: string, toAddr: string, bytes: number, port = 5201) {
  const server = lab.spawn(toNs, process.execPath, [TRANSFER_JS, 'serve', String(port)]);
  for (let i = 0; i < 100 && !server.log.join('').includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
  const sent = await lab.exec(fromNs, process.execPath, [TRANSFER_JS, 'send', toAddr, String(port), String(bytes)], 300_000);
  for (let i = 0; i < 200 && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  const received = server.log.join('').replace('listening\n', '').trim();
  return { sent: sent.stdout.trim(), received, sendErr: sent.stderr };
}

/** UDP datagrams of many sizes to an echo server across the tunnel; "<echoed>/<sent> identical". */
export async function udpEcho(lab: Lab, fromNs: string, toNs: string, toAddr: string, port = 5301): Promise<string> {
  const server = lab.spawn(toNs, process.execPath, [UDP_ECHO_JS, 'serve', String(port)]);
  for (let i = 0; i < 100 && !server.log.join('').includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
  const r = await lab.exec(fromNs, process.execPath, [UDP_ECHO_JS, 'send', toAddr, String(port)], 30_000);
  server.kill();
  return r.stdout.trim() || r.stderr.trim();
}
