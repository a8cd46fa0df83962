// wg-quick's INI dialect: [Section] headers, "Key = Value" lines, '#' comments. Keeps line numbers.
import { ConfigError } from '../errors.js';

export interface IniEntry {
  key: string;
  value: string;
  line: number;
}

export interface IniSection {
  name: string;
  line: number;
  entries: IniEntry[];
}

export function parseIni(text: string, file: string): IniSection[] {
  const sections: IniSection[] = [];
  let current: IniSection | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const hash = lines[i].indexOf('#');
    const raw = (hash >= 0 ? lines[i].slice(0, hash) : lines[i]).trim();
    if (raw === '') continue;
    const sec = /^\[\s*([A-Za-z]+)\s*\]$/.exec(raw);
    if (sec) {
      current = { name: sec[1], line: lineNo, entries: [] };
      sections.push(current);
      continue;
    }
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new ConfigError(`${file}:${lineNo}: expected "Key = Value" or a [Section] header, got "${raw}"`);
    if (!current) throw new ConfigError(`${file}:${lineNo}: "${raw.slice(0, eq).trim()}" appears before any [Interface] or [Peer] section`);
    current.entries.push({ key: raw.slice(0, eq).trim(), value: raw.slice(eq + 1).trim(), line: lineNo });
  }
  return sections;
}
