// The admin host's roster store: the admin key (Ed25519, 0600, beside the config) and the signed
// roster (CONFIG.roster, the same cache every daemon keeps). An edit is locked, starts from the
// newest roster on disk, is checked, signed and written atomically; the caller hands it on.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { ConfigError, MeshdError } from '../errors.js';
import { adminKeyFile, loadConfig, rosterFile, type MeshConfig } from '../config/config.js';
import { meshKeyToBase64, meshPublicKeyOf, parseMeshPrivateKey, type MeshPrivateKey, type MeshPublicKey } from '../crypto/ed25519.js';
import { withFileLock, writeFileAtomic } from '../config/write.js';
import { checkRoster, signRoster, type Roster, type RosterDoc } from './roster.js';

export function readAdminKey(configFile: string, meshKey: MeshPublicKey): MeshPrivateKey {
  const file = adminKeyFile(configFile);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`${file}: no admin key: this is not the mesh's admin host (meshd mesh init makes it)`);
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code}`);
  }
  if ((statSync(file).mode & 0o077) !== 0) throw new ConfigError(`${file}: the admin key is readable by others (mode must be 0600)`);
  const k = parseMeshPrivateKey(text);
  if (!k) throw new ConfigError(`${file}: not a base64 admin key`);
  if (meshKeyToBase64(meshPublicKeyOf(k)) !== meshKeyToBase64(meshKey)) throw new ConfigError(`${file}: this admin key is not the one of MeshKey ${meshKeyToBase64(meshKey)}`);
  return k;
}

export function writeAdminKey(configFile: string, k: MeshPrivateKey): string {
  const file = adminKeyFile(configFile);
  if (existsSync(file)) throw new ConfigError(`${file} exists: this host already administers a mesh (remove the file to start over)`);
  writeFileSync(file, Buffer.from(k).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return file;
}

/** The roster cached beside a config (checked under its MeshKey), or null if there is none. */
export function readCachedRoster(cfg: MeshConfig): Roster | null {
  if (!cfg.iface.meshKey) throw new ConfigError(`${cfg.file}: no MeshKey in [Interface]: this host is not in a mesh (meshd mesh init, or meshd join)`);
  const file = rosterFile(cfg.file);
  if (!existsSync(file)) return null;
  const r = checkRoster(new Uint8Array(readFileSync(file)), cfg.iface.meshKey, 0);
  if (!r.ok) throw new ConfigError(`${file}: ${r.reason}: ${r.detail}`);
  return r.roster;
}

/** Writes a first roster (meshd mesh init). */
export function writeFirstRoster(configFile: string, doc: RosterDoc, k: MeshPrivateKey): Roster {
  const signed = signRoster(doc, k);
  const r = checkRoster(signed, doc.meshKey, 0);
  if (!r.ok) throw new MeshdError('EROSTER', `the new roster does not check (${r.reason}: ${r.detail})`);
  writeFileAtomic(rosterFile(configFile), signed);
  return r.roster;
}

/**
 * One locked edit of the mesh's roster on the admin host: `edit` gets the newest roster and returns
 * the next document (or throws a ConfigError); the signed result is written and returned.
 */
export async function editRoster<T>(configFile: string, edit: (doc: Roster, nowMs: number) => { doc: RosterDoc; result: T }): Promise<{ roster: Roster; result: T }> {
  const cfg = loadConfig(configFile);
  const meshKey = cfg.iface.meshKey;
  if (!meshKey) throw new ConfigError(`${configFile}: no MeshKey in [Interface] (meshd mesh init makes one)`);
  const admin = readAdminKey(configFile, meshKey);
  return withFileLock(rosterFile(configFile), () => {
    const current = readCachedRoster(cfg);
    if (!current) throw new ConfigError(`${rosterFile(configFile)}: missing: the admin host has lost its roster (see docs/mesh.md, "starting over")`);
    const { doc, result } = edit(current, Date.now());
    const signed = signRoster(doc, admin);
    const r = checkRoster(signed, meshKey, current.serial);
    if (!r.ok) throw new MeshdError('EROSTER', `the edited roster does not check (${r.reason}: ${r.detail})`);
    writeFileAtomic(rosterFile(configFile), signed);
    return { roster: r.roster, result };
  });
}
