// `meshd install-systemd`: writes meshd@.service and meshd-relay.service with ExecStart pointed at
// this install, and tells a running systemd about them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { installedUnit, systemdRunning, UNIT_DIR, UNITS } from '../ops/systemd.js';

export function installSystemd(o: { unitDir?: string; reload?: boolean }): void {
  const dir = o.unitDir ?? UNIT_DIR;
  try {
    mkdirSync(dir, { recursive: true });
    for (const name of UNITS) {
      const file = join(dir, name);
      writeFileSync(file, installedUnit(name), { mode: 0o644 });
      process.stdout.write(`wrote ${file}\n`);
    }
  } catch (err) {
    throw new MeshdError('EINSTALL', `cannot write units to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (o.reload !== false && dir === UNIT_DIR && systemdRunning()) {
    execFileSync('systemctl', ['daemon-reload'], { stdio: 'inherit' });
    process.stdout.write('systemctl daemon-reload done\n');
  }
  process.stdout.write('next: systemctl enable --now meshd@IFACE (config /etc/meshd/IFACE.conf), meshd-relay (arguments in /etc/default/meshd-relay)\n');
}
