// Interface configuration from TypeScript through iproute2: addresses, MTU, link state, routes.
// Routes and addresses go away with the interface when the TUN fd closes.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { formatCidr, formatIpAddr, type Cidr } from '../tunnel/cidr.js';
import { MeshdError } from '../errors.js';

const run = promisify(execFile);

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args, { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new MeshdError('ENETCONFIG', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

export async function addAddress(iface: string, a: Cidr): Promise<void> {
  await ip(['-' + a.version, 'address', 'add', `${formatIpAddr(a)}/${a.bits}`, 'dev', iface]);
}

export async function setMtuAndUp(iface: string, mtu: number): Promise<void> {
  await ip(['link', 'set', 'dev', iface, 'mtu', String(mtu), 'up']);
}

/** Adds a route for one AllowedIPs prefix; an identical existing route is fine. */
export async function addRoute(iface: string, c: Cidr, table: string): Promise<void> {
  const args = ['-' + c.version, 'route', 'replace', formatCidr(c), 'dev', iface];
  if (table !== 'auto') args.push('table', table);
  await ip(args);
}

export async function deleteRoute(iface: string, c: Cidr, table: string): Promise<void> {
  const args = ['-' + c.version, 'route', 'del', formatCidr(c), 'dev', iface];
  if (table !== 'auto') args.push('table', table);
  try {
    await ip(args);
  } catch {
    // Already gone (the interface may have gone first).
  }
}

/** Is a prefix a default route (which needs wg-quick's policy routing, not yet supported)? */
export function isDefaultRoute(c: Cidr): boolean {
  return c.bits === 0;
}
