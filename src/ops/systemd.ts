// systemd units shipped in systemd/: installing them with ExecStart pointed at this install, and
// reading a unit's ExecStart the way systemd runs it (specifiers, Environment=, $VAR splitting),
// which the tests use to start exactly what systemd would.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

export const UNITS = ['meshd@.service', 'meshd-relay.service'] as const;
export type UnitName = (typeof UNITS)[number];

/** The program path each shipped unit's ExecStart names, and the entry point installing puts there. */
const SHIPPED_EXEC: Record<UnitName, { path: string; bin: string }> = {
  'meshd@.service': { path: '/usr/local/bin/meshd', bin: 'bin/meshd.js' },
  'meshd-relay.service': { path: '/usr/local/bin/meshd-relay', bin: 'bin/meshd-relay.js' },
};

export function unitTemplate(name: UnitName): string {
  return readFileSync(join(packageRoot(), 'systemd', name), 'utf8');
}

/** Quotes a word for a systemd command line when it needs it. */
function quote(word: string): string {
  return /^[^\s"'\\$%;]+$/.test(word) ? word : `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

/** The interpreter flags a bin file's `#!/usr/bin/env -S node ...` line asks for. */
export function shebangFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0];
  const m = /^#!\S*env -S node(.*)$/.exec(first);
  return m ? m[1].split(' ').filter(Boolean) : [];
}

/**
 * The unit as installed: ExecStart runs this Node (`node`, absolute) on this package's entry
 * point, with the flags its shebang line gives, instead of the shipped /usr/local/bin path.
 */
export function installedUnit(name: UnitName, node = process.execPath, root = packageRoot()): string {
  const { path: shipped, bin } = SHIPPED_EXEC[name];
  const entry = join(root, bin);
  const command = [node, ...shebangFlags(entry), entry].map(quote).join(' ');
  let replaced = 0;
  const text = unitTemplate(name)
    .split('\n')
    .map((line) => {
      if (!line.startsWith(`ExecStart=${shipped} `) && line !== `ExecStart=${shipped}`) return line;
      replaced++;
      return `ExecStart=${command}${line.slice(`ExecStart=${shipped}`.length)}`;
    })
    .join('\n');
  if (replaced !== 1) throw new Error(`systemd/${name}: expected one ExecStart=${shipped} line, found ${replaced}`);
  return text;
}

export interface UnitCommand {
  argv: string[];
  env: Record<string, string>;
  /** EnvironmentFile= paths (a leading "-": optional), for the caller to read if it wants. */
  environmentFiles: string[];
}

/** Splits a systemd command line or Environment= value into words (double and single quotes, backslash escapes). */
export function splitWords(s: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let q: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      q = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (q) throw new Error(`unterminated quote in: ${s}`);
  if (inWord) words.push(cur);
  return words;
}

/**
 * What systemd would run for the unit's [Service] ExecStart: `%i`/`%I` replaced by `instance`,
 * `%%` by `%`, Environment= assignments applied in order (then `overrides`, as an EnvironmentFile=
 * would), `$VAR` expanded into words and `${VAR}` into one word. (systemd.service(5), "Command lines".)
 */
export function execStartOf(unit: string, instance = '', overrides: Record<string, string> = {}): UnitCommand {
  const env: Record<string, string> = {};
  const environmentFiles: string[] = [];
  let exec: string | null = null;
  let section = '';
  const spec = (s: string) => s.replace(/%([%iI])/g, (_, c: string) => (c === '%' ? '%' : instance));
  for (const raw of unit.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      section = sec[1];
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'Environment') {
      for (const w of splitWords(spec(value))) {
        const e = w.indexOf('=');
        if (e > 0) env[w.slice(0, e)] = w.slice(e + 1);
      }
    } else if (key === 'EnvironmentFile') environmentFiles.push(spec(value));
    else if (key === 'ExecStart') exec = value;
  }
  if (exec === null) throw new Error('the unit has no ExecStart=');
  Object.assign(env, overrides);
  const argv: string[] = [];
  for (const w of splitWords(exec.replace(/^[-@:+!]+/, ''))) {
    const whole = /^\$\{(\w+)\}$/.exec(w);
    const split = /^\$(\w+)$/.exec(w);
    if (whole) argv.push(env[whole[1]] ?? '');
    else if (split) argv.push(...splitWords(env[split[1]] ?? ''));
    else argv.push(spec(w).replace(/\$\{(\w+)\}/g, (_, v: string) => env[v] ?? ''));
  }
  return { argv, env, environmentFiles };
}

/** Where units go, and whether systemd is running to be told about them. */
export const UNIT_DIR = '/etc/systemd/system';
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}
