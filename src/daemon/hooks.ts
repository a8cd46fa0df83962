// PreUp/PostUp/PreDown/PostDown commands, run as wg-quick runs them: sh -c, %i = interface name.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MeshdError } from '../errors.js';

const run = promisify(execFile);

export async function runHooks(kind: string, commands: readonly string[], iface: string): Promise<void> {
  for (const c of commands) {
    const cmd = c.replaceAll('%i', iface);
    try {
      await run('/bin/sh', ['-c', cmd], { timeout: 60_000 });
    } catch (err) {
      const e = err as { stderr?: string; code?: number | string };
      throw new MeshdError('EHOOK', `${kind} "${cmd}" failed (exit ${e.code ?? '?'}): ${(e.stderr ?? '').trim()}`);
    }
  }
}
