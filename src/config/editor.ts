// Edits a config file's text without disturbing anything outside the edited section: comments,
// blank lines, order and spelling stay byte for byte. Pure (text in, text out).
import { keyId, keyToBase64, parsePublicKey } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';

const HEADER = /^\s*\[\s*([A-Za-z]+)\s*\]\s*(#.*)?$/;

interface Section {
  kind: string;
  /** First line of the section (its leading comment block, if any). */
  start: number;
  header: number;
  /** One past its last line (trailing comments that lead into the next section are not its own). */
  end: number;
}

function isComment(line: string): boolean {
  return /^\s*#/.test(line);
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

function sections(lines: string[]): Section[] {
  const headers: number[] = [];
  lines.forEach((l, i) => {
    if (HEADER.test(l)) headers.push(i);
  });
  return headers.map((h, i) => {
    let start = h;
    while (start > 0 && isComment(lines[start - 1])) start--;
    let end = i + 1 < headers.length ? headers[i + 1] : lines.length;
    while (end > h + 1 && isComment(lines[end - 1])) end--;
    return { kind: HEADER.exec(lines[h])![1].toLowerCase(), start, header: h, end };
  });
}

function value(lines: string[], s: Section, key: string): string | undefined {
  for (let i = s.header + 1; i < s.end; i++) {
    const m = /^\s*([A-Za-z]+)\s*=\s*(.*?)\s*(#.*)?$/.exec(lines[i]);
    if (m && m[1].toLowerCase() === key.toLowerCase()) return m[2];
  }
  return undefined;
}

export interface NewPeer {
  publicKey: string;
  name?: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
  presharedKey?: string;
  comment?: string;
}

/** Appends a [Peer] section at the end of the file, separated by one blank line. */
export function appendPeer(text: string, p: NewPeer): string {
  const body = [
    ...(p.comment ? [`# ${p.comment}`] : []),
    '[Peer]',
    ...(p.name ? [`Name = ${p.name}`] : []),
    `PublicKey = ${p.publicKey}`,
    ...(p.presharedKey ? [`PresharedKey = ${p.presharedKey}`] : []),
    `AllowedIPs = ${p.allowedIps.join(', ')}`,
    ...(p.endpoint ? [`Endpoint = ${p.endpoint}`] : []),
    ...(p.persistentKeepalive ? [`PersistentKeepalive = ${p.persistentKeepalive}`] : []),
  ].join('\n');
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  let base = text;
  if (base.length && !base.endsWith('\n')) base += eol;
  const sep = base.length === 0 || /\n\s*\n$/.test(base) ? '' : eol;
  return base + sep + body.replace(/\n/g, eol) + eol;
}

/** Finds a [Peer] by Name or public key; returns its key, or throws if absent. */
export function removePeer(text: string, nameOrKey: string, file: string): { text: string; publicKey: string; name: string | undefined } {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const finalEol = /\r?\n$/.test(text);
  const lines = (finalEol ? text.replace(/\r?\n$/, '') : text).split(/\r?\n/);
  let wantKey: string | null = null;
  try {
    wantKey = keyId(parsePublicKey(nameOrKey));
  } catch {
    // a name
  }
  for (const s of sections(lines)) {
    if (s.kind !== 'peer') continue;
    const name = value(lines, s, 'Name');
    const pk = value(lines, s, 'PublicKey');
    let id: string | null = null;
    try {
      id = pk ? keyId(parsePublicKey(pk)) : null;
    } catch {
      id = null;
    }
    if (name === nameOrKey || (wantKey !== null && id === wantKey)) {
      let { start, end } = s;
      // Do not leave two blank lines where the section was.
      if (start > 0 && isBlank(lines[start - 1]) && (end >= lines.length || isBlank(lines[end]))) start--;
      const out = [...lines.slice(0, start), ...lines.slice(end)];
      return { text: out.join(eol) + (finalEol && out.length ? eol : ''), publicKey: keyToBase64(parsePublicKey(pk!)), name };
    }
  }
  throw new ConfigError(`${file}: no [Peer] named or keyed "${nameOrKey}"`);
}

/** Adds `Key = value` as the last entry of [Interface] (before its trailing blank lines). */
export function addInterfaceEntry(text: string, key: string, val: string, file: string): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const finalEol = /\r?\n$/.test(text);
  const lines = (finalEol ? text.replace(/\r?\n$/, '') : text).split(/\r?\n/);
  const s = sections(lines).find((x) => x.kind === 'interface');
  if (!s) throw new ConfigError(`${file}: no [Interface] section`);
  if (value(lines, s, key) !== undefined) throw new ConfigError(`${file}: [Interface] already has ${key}`);
  let at = s.end;
  while (at > s.header + 1 && isBlank(lines[at - 1])) at--;
  const out = [...lines.slice(0, at), `${key} = ${val}`, ...lines.slice(at)];
  return out.join(eol) + (finalEol ? eol : '');
}
