// The shipped systemd units: `systemd-analyze verify` on both as `meshd install-systemd` writes them,
// and each unit's ExecStart run the way systemd runs it (its arguments and Environment=, a clean
// environment, %i for the instance) in a namespace; ExecReload's SIGHUP reloads, SIGTERM stops
// cleanly (exit 0, interface and control socket gone).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execStartOf, installedUnit } from '../../src/ops/systemd.js';
import { keyPair } from '../helpers/keys.js';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping', 'systemd-analyze', 'curl']);
/** systemd's default PATH for services (systemd.exec(5)); nothing else is inherited. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Service {
  proc: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

/** Runs a unit's command in `ns` with only the unit's environment, as systemd would (minus its sandbox). */
function runAsSystemd(ns: string, argv: string[], env: Record<string, string>): Service {
  const proc = spawn('ip', ['netns', 'exec', ns, ...argv], { env: { PATH: SYSTEMD_PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  let partial = '';
  const take = (d: Buffer) => {
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop()!;
    out.push(...lines.filter(Boolean));
  };
  proc.stdout!.on('data', take);
  proc.stderr!.on('data', take);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, out, exited };
}

/** ExecReload=/bin/kill -HUP $MAINPID, run as written. */
async function execReload(lab: Lab, unit: string, pid: number): Promise<void> {
  const line = unit.split('\n').find((l) => l.startsWith('ExecReload='))!;
  const argv = line.slice('ExecReload='.length).replace('$MAINPID', String(pid)).split(' ');
  const r = await lab.run(argv[0], argv.slice(1));
  if (r.code !== 0) throw new Error(`${line}: ${r.stderr}`);
}

/** The exit code, or 'timeout' after `ms` (the timer is cleared: it must not hold the test process open). */
async function exitWithin(s: Service, ms: number): Promise<number | null | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([s.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

const logged = (s: Service, msg: string) => s.out.some((l) => l.includes(`"msg":"${msg}"`));

if (why) t.plan(0, why);
else {
  t.test('both units pass systemd-analyze verify as installed', async (t) => {
    const lab = new Lab(t);
    const dir = join(lab.dir, 'units');
    const inst = await lab.cli(['install-systemd', '--unit-dir', dir, '--no-reload']);
    t.equal(inst.code, 0, inst.stderr);
    t.match(inst.stdout, /wrote .*meshd@\.service/);
    for (const unit of ['meshd@mesh0.service', 'meshd-relay.service']) {
      const r = await lab.run('systemd-analyze', ['verify', join(dir, unit)]);
      t.equal(r.code, 0, `systemd-analyze verify ${unit}: ${r.stderr}`);
      t.equal(r.stderr.trim(), '', `no warnings for ${unit}`);
    }
    const text = readFileSync(join(dir, 'meshd@.service'), 'utf8');
    t.match(text, new RegExp(`^ExecStart=${process.execPath} .*bin/meshd\\.js up %i$`, 'm'), 'ExecStart runs this install');
    t.match(text, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE$/m);
    t.match(text, /^ProtectSystem=strict$/m);
    t.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    t.match(text, /^Environment=MESHD_LOG_FORMAT=json$/m, 'logs to the journal as JSON');
    // A unit whose ExecStart does not exist is what verify is for: it must fail.
    writeFileSync(join(dir, 'broken.service'), text.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/meshd'));
    t.not((await lab.run('systemd-analyze', ['verify', join(dir, 'broken.service')])).code, 0, 'verify refuses a unit whose command is missing');
  });

  t.test('meshd@IFACE: ExecStart as systemd runs it, SIGHUP reloads, SIGTERM stops cleanly', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface);
    // The instance name is the interface; its config is where `meshd up IFACE` looks.
    const created = !existsSync('/etc/meshd');
    mkdirSync('/etc/meshd', { recursive: true, mode: 0o700 });
    const conf = `/etc/meshd/${h.a.iface}.conf`;
    writeFileSync(conf, meshConfig(h.a, h.b, { endpoint: true }), { mode: 0o600 });
    t.teardown(() => {
      rmSync(conf, { force: true });
      // Only the directory this test made, and only while empty (rmSync refuses any directory
      // without `recursive`: on a host without /etc/meshd that threw and left the daemon running).
      if (created) {
        try {
          rmdirSync('/etc/meshd');
        } catch {
          // something else was put there meanwhile: not ours to remove
        }
      }
    });
    const unit = installedUnit('meshd@.service');
    const cmd = execStartOf(unit, h.a.iface);
    t.same(cmd.argv.slice(-2), ['up', h.a.iface], 'the unit runs `meshd up %i`');
    const svc = runAsSystemd(h.a.ns, cmd.argv, cmd.env);
    t.teardown(() => {
      if (svc.proc.exitCode === null) svc.proc.kill('SIGKILL');
    });
    t.ok(await waitFor(() => logged(svc, 'interface up'), 15_000), `the daemon comes up: ${svc.out.join('\n')}`);
    t.ok(svc.out.length > 0 && svc.out.every((l) => l.startsWith('{') && JSON.parse(l)), 'every log line is JSON (for the journal)');
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', h.b.mesh4])).code, 0, 'the tunnel carries traffic');

    // `systemctl reload`: a peer added to the config appears.
    const extra = keyPair();
    appendFileSync(conf, `\n[Peer]\nPublicKey = ${extra.pub}\nAllowedIPs = 10.77.0.9/32\n`);
    await execReload(lab, unit, svc.proc.pid!);
    t.ok(
      await waitFor(async () => {
        const s = await lab.cli(['status', h.a.iface, '--json']);
        return s.code === 0 && (JSON.parse(s.stdout) as { peers: unknown[] }).peers.length === 2;
      }, 10_000),
      'after ExecReload the new peer is there',
    );
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '1', '-W', '3', h.b.mesh4])).code, 0, 'and the old one still answers');

    // `systemctl stop`: SIGTERM to the main process.
    svc.proc.kill('SIGTERM');
    const code = await exitWithin(svc, 20_000);
    t.equal(code, 0, 'exits 0 within TimeoutStopSec');
    t.not((await lab.exec(h.a.ns, 'ip', ['link', 'show', h.a.iface])).code, 0, 'the interface is gone');
    t.notOk(existsSync(`/var/run/meshd/${h.a.iface}.sock`), 'the control socket is gone');
  });

  t.test('meshd-relay.service: ExecStart as systemd runs it, SIGHUP reloads the allow-list, SIGTERM stops', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const allow = lab.file('allowed.keys', `${keyPair().pub}\n`);
    const unit = installedUnit('meshd-relay.service');
    // What /etc/default/meshd-relay (EnvironmentFile=) would set.
    const args = `--listen ${h.a.underlay}:8080 --no-stun --allow-keys ${allow} --key-file ${join(lab.dir, 'relay.key')}`;
    const cmd = execStartOf(unit, '', { MESHD_RELAY_ARGS: args });
    t.same(cmd.environmentFiles, ['-/etc/default/meshd-relay'], 'arguments come from an optional environment file');
    t.same(cmd.argv.slice(-args.split(' ').length), args.split(' '), '$MESHD_RELAY_ARGS is split into words');
    t.same(execStartOf(unit).argv.slice(-3), ['[::]:80', '--key-file', '/var/lib/meshd-relay/relay.key'], 'the default serves :80 with a kept key');
    const svc = runAsSystemd(h.a.ns, cmd.argv, cmd.env);
    t.teardown(() => {
      if (svc.proc.exitCode === null) svc.proc.kill('SIGKILL');
    });
    t.ok(await waitFor(() => logged(svc, 'meshd-relay up'), 15_000), `the relay comes up: ${svc.out.join('\n')}`);
    t.ok(svc.out.every((l) => l.startsWith('{') && JSON.parse(l)), 'every log line is JSON');
    const health = await lab.exec(h.b.ns, 'curl', ['-s', '--max-time', '5', `http://${h.a.underlay}:8080/healthz`]);
    t.match(health.stdout, /^ok 0 clients/, 'it serves');
    appendFileSync(allow, `${keyPair().pub}\n`);
    await execReload(lab, unit, svc.proc.pid!);
    t.ok(await waitFor(() => svc.out.some((l) => l.includes('allow-list reloaded') && l.includes('"keys":2')), 5000), 'ExecReload re-reads the allow-list');
    svc.proc.kill('SIGTERM');
    const code = await exitWithin(svc, 20_000);
    t.equal(code, 0, 'exits 0');
    t.ok(logged(svc, 'shutting down'));
  });
}
