// DNS = ... applied the way wg-quick does it: through resolvconf, keyed by the interface.
import { execFile, execFileSync } from 'node:child_process';
import { isIP } from 'node:net';
import { MeshdError } from '../errors.js';

function hasResolvconf(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v resolvconf'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function resolvconf(args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = execFile('resolvconf', args, { timeout: 10_000 }, (err, _out, stderr) =>
      err ? reject(new MeshdError('EDNS', `resolvconf ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(),
    );
    p.stdin?.on('error', () => undefined); // resolvconf may exit before reading: its exit status says why
    p.stdin?.end(input);
  });
}

/** Installs nameservers and search domains for the interface; returns false when resolvconf is missing. */
export async function setDns(iface: string, entries: readonly string[]): Promise<boolean> {
  if (entries.length === 0) return true;
  if (!hasResolvconf()) return false;
  const servers = entries.filter((e) => isIP(e));
  const search = entries.filter((e) => !isIP(e));
  const text = servers.map((s) => `nameserver ${s}\n`).join('') + (search.length ? `search ${search.join(' ')}\n` : '');
  await resolvconf(['-a', `tun.${iface}`, '-m', '0', '-x'], text);
  return true;
}

export async function unsetDns(iface: string, entries: readonly string[]): Promise<void> {
  if (entries.length === 0 || !hasResolvconf()) return;
  await resolvconf(['-d', `tun.${iface}`, '-f'], '').catch(() => undefined);
}
