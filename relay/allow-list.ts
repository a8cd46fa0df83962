// --allow-keys FILE: one base64 public key per line ('#' comments), reloaded on SIGHUP.
import { readFileSync } from 'node:fs';
import { keyId, parsePublicKey } from '../src/crypto/keys.js';
import { ConfigError } from '../src/errors.js';

export function loadAllowList(file: string): Set<string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const keys = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    try {
      keys.add(keyId(parsePublicKey(line)));
    } catch {
      throw new ConfigError(`${file}:${i + 1}: not a base64 public key`);
    }
  });
  return keys;
}
