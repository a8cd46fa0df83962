// The lab the integration tests and benchmarks build leaves nothing behind when its process ends
// by a signal (tap's SIGALRM when a file runs past its timeout, ^C, pkill of a bench), and what a
// SIGKILLed one left is removed by the next lab.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, removeDeadLabs, exited } from '../helpers/lab.js';
import { packageRoot } from '../../src/package-root.js';
import { keyPair } from '../helpers/keys.js';

const why = labUnavailable(['sleep']);
const LAB_MODULE = join(packageRoot(), 'dist', 'src', 'lab', 'netns-lab.js');

/** A process holding a lab with one namespace, a process asleep in it and (`withMeshd`) a meshd; resolves once it is all up. */
async function labOwner(withMeshd = false): Promise<{ proc: ReturnType<typeof spawn>; ns: string; dir: string; sleeper: number; iface: string | null }> {
  const script = `
    import { Lab } from ${JSON.stringify(LAB_MODULE)};
    const lab = new Lab({ teardown() {} });
    const ns = await lab.ns('x');
    const sleeper = lab.spawn(ns, 'sleep', ['600']);
    let iface = null;
    if (${withMeshd}) {
      iface = lab.id + 'm';
      await lab.meshd(ns, lab.file('m.conf', '[Interface]\\nPrivateKey = ${keyPair().priv}\\nListenPort = 51820\\n'), iface);
    }
    console.log(JSON.stringify({ ns, dir: lab.dir, sleeper: sleeper.pid, iface }));
    setInterval(() => {}, 1000);
  `;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    proc.once('exit', (code) => reject(new Error(`the lab's process exited ${code} before it was up`)));
  });
  return { proc, ...(JSON.parse(line) as { ns: string; dir: string; sleeper: number; iface: string | null }) };
}

function namespaceExists(ns: string): boolean {
  return existsSync(`/var/run/netns/${ns}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Teardown: the lab owners killed and gone, then whatever they left removed. */
async function ended(procs: ReturnType<typeof spawn>[]): Promise<void> {
  for (const p of procs) {
    p.kill('SIGKILL');
    await exited(p);
  }
  removeDeadLabs();
}

/** A moment for the kernel to finish with what was killed. */
async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
}

if (why) t.plan(0, why);
else {
  for (const sig of ['SIGALRM', 'SIGTERM', 'SIGINT'] as const) {
    t.test(`${sig}: the namespace, what runs in it and the lab's directory are gone, and the signal still ends the process`, async (t) => {
      const o = await labOwner(true);
      t.teardown(() => ended([o.proc]));
      t.ok(namespaceExists(o.ns) && existsSync(o.dir), 'up: a namespace and a lab directory');
      const sockets = [`/var/run/meshd/${o.iface}.sock`, `/var/run/wireguard/${o.iface}.sock`];
      t.ok(sockets.every((f) => existsSync(f)), 'and a meshd with its control and UAPI sockets');
      const exec = spawnSync('ip', ['netns', 'exec', o.ns, 'true'], { encoding: 'utf8' });
      t.equal(exec.stderr, '', 'ip netns exec in a lab namespace says nothing on stderr');
      o.proc.kill(sig);
      await exited(o.proc);
      t.equal(o.proc.signalCode, sig, `the process ended by ${sig}`);
      await settle();
      t.notOk(namespaceExists(o.ns), 'no namespace left');
      t.notOk(existsSync(`/etc/netns/${o.ns}`), 'no /etc/netns entry left');
      t.notOk(existsSync(o.dir), 'no lab directory left');
      t.notOk(alive(o.sleeper), 'nothing left running');
      t.notOk(sockets.some((f) => existsSync(f)), "no socket file of the killed meshd left");
      t.notOk(existsSync(`/var/run/meshd-lab/${o.ns}`), 'no owner record left');
    });
  }

  t.test("SIGKILL runs no handler: the next lab removes what the dead one left, and leaves a live one's alone", async (t) => {
    const dead = await labOwner();
    const live = await labOwner();
    t.teardown(() => ended([live.proc, dead.proc]));
    dead.proc.kill('SIGKILL');
    await exited(dead.proc);
    t.ok(namespaceExists(dead.ns), "the SIGKILLed process's namespace is still there");
    const lab = new Lab(t); // the first lab of this process looks for dead ones
    t.ok(lab.id, 'a new lab');
    await settle();
    t.notOk(namespaceExists(dead.ns), "the dead lab's namespace is removed");
    t.notOk(existsSync(`/etc/netns/${dead.ns}`), 'and its /etc/netns entry');
    t.notOk(existsSync(dead.dir), 'and its directory');
    t.ok(namespaceExists(live.ns) && existsSync(live.dir), 'the live lab is untouched');
  });
}
