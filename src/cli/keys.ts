// genkey / pubkey / genpsk, byte-compatible with wg(8).
import { randomBytes } from 'node:crypto';
import { fstatSync, fchmodSync, writeFileSync } from 'node:fs';
import { generatePresharedKey, generatePrivateKey, keyToBase64, parsePrivateKey, publicKeyOf, KeyFormatError } from '../crypto/keys.js';
import { UsageError } from '../errors.js';

const rng = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** Writes a secret: to FILE created 0600, or to stdout (tightened to 0600 when it is a file). */
export function writeSecret(text: string, out: string | undefined): void {
  if (out) {
    writeFileSync(out, text, { mode: 0o600, flag: 'w' });
    return;
  }
  try {
    const st = fstatSync(1);
    if (st.isFile() && (st.mode & 0o077) !== 0) fchmodSync(1, 0o600);
  } catch {
    // stdout is not something we can stat or change; nothing to protect
  }
  process.stdout.write(text);
}

export function genkey(out?: string): void {
  writeSecret(keyToBase64(generatePrivateKey(rng)) + '\n', out);
}

export function genpsk(out?: string): void {
  writeSecret(keyToBase64(generatePresharedKey(rng)) + '\n', out);
}

export async function pubkey(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  try {
    process.stdout.write(keyToBase64(publicKeyOf(parsePrivateKey(text))) + '\n');
  } catch (err) {
    if (err instanceof KeyFormatError) throw new UsageError('pubkey: standard input is not a base64 private key');
    throw err;
  }
}
