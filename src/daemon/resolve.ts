// Resolves the Endpoint host names in a config once, at start (as wg-quick does through wg(8)).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import type { HostPort } from '../config/config.js';
import { normalizeAddress, type Endpoint } from '../tunnel/endpoint.js';

export async function resolveEndpoint(hp: HostPort, file: string, line: number): Promise<Endpoint> {
  if (isIP(hp.host)) return { address: normalizeAddress(hp.host), port: hp.port };
  try {
    const r = await lookup(hp.host);
    return { address: normalizeAddress(r.address), port: hp.port };
  } catch (err) {
    throw new ConfigError(`${file}:${line}: [Peer] Endpoint: cannot resolve "${hp.host}": ${(err as NodeJS.ErrnoException).code}`);
  }
}
