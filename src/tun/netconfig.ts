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

export async function setMtu(iface: string, mtu: number): Promise<void> {
  await ip(['link', 'set', 'dev', iface, 'mtu', String(mtu)]);
}

export async function setMtuAndUp(iface: string, mtu: number): Promise<void> {
  await ip(['link', 'set', 'dev', iface, 'mtu', String(mtu), 'up']);
}

/**
 * Adds and removes many routes with one `ip -batch` process (a daemon with 1,000 peers would
 * otherwise start 1,000 processes). Removals tolerate routes that are already gone.
 */
export async function applyRoutes(iface: string, add: Cidr[], del: Cidr[], table: string): Promise<void> {
  const suffix = table !== 'auto' ? ` table ${table}` : '';
  const batch = (lines: string[], force: boolean) =>
    new Promise<void>((resolve, reject) => {
      if (lines.length === 0) return resolve();
      const p = execFile('ip', [...(force ? ['-force'] : []), '-batch', '-'], { timeout: 60_000 }, (err, _out, stderr) => {
        if (err && !force) reject(new MeshdError('ENETCONFIG', `ip -batch (routes for ${iface}): ${String(stderr).trim() || err.message}`));
        else resolve();
      });
      p.stdin?.end(lines.join('\n') + '\n');
    });
  await batch(del.map((c) => `route del ${formatCidr(c)} dev ${iface}${suffix}`), true);
  await batch(add.map((c) => `route replace ${formatCidr(c)} dev ${iface}${suffix}`), false);
}

/** Is a prefix a default route (which needs wg-quick's policy routing, not yet supported)? */
export function isDefaultRoute(c: Cidr): boolean {
  return c.bits === 0;
}
