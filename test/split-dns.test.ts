// Which resolver backend split DNS uses and the commands it runs for each (src/daemon/split-dns.ts).
// The resolvconf path runs for real in test/integration/split-dns.test.ts; systemd-resolved cannot
// run in CI (no systemd as PID 1), so its command sequence is checked here against a recording runner.
import t from 'tap';
import { SplitDns, type CmdResult, type HostProbe } from '../src/daemon/split-dns.js';

function recorder(answers: Record<string, Partial<CmdResult>>) {
  const calls: string[] = [];
  const run = async (cmd: string, args: string[], input?: string): Promise<CmdResult> => {
    const line = `${cmd} ${args.join(' ')}${input ? ` <<< ${JSON.stringify(input)}` : ''}`;
    calls.push(line);
    const key = Object.keys(answers).find((k) => `${cmd} ${args.join(' ')}`.startsWith(k));
    return { ok: true, missing: false, stdout: '', stderr: '', ...(key ? answers[key] : {}) };
  };
  return { calls, run };
}
const probe = (resolved: boolean, debian: string[] = []): HostProbe => ({ resolvedRunning: () => resolved, debianResolvconfRecords: () => debian });

t.test('systemd-resolved: the interface gets the server and ~DOMAIN; revert undoes it', async (t) => {
  const r = recorder({});
  const s = new SplitDns('mesh0', r.run, probe(true));
  await s.apply('mesh', ['100.64.0.1', 'fd7a::1']);
  t.same(r.calls, ['resolvectl --version', 'resolvectl dns mesh0 100.64.0.1 fd7a::1', 'resolvectl domain mesh0 ~mesh']);
  t.same([s.status().backend, s.status().applied], ['systemd-resolved', true]);
  await s.apply('mesh', ['100.64.0.1', 'fd7a::1']);
  t.equal(r.calls.length, 3, 'the same again is a no-op');
  await s.apply('corp', ['100.64.0.1', 'fd7a::1']);
  t.same(r.calls.slice(3), ['resolvectl revert mesh0', 'resolvectl --version', 'resolvectl dns mesh0 100.64.0.1 fd7a::1', 'resolvectl domain mesh0 ~corp'], 'a new domain replaces the old');
  await s.remove();
  t.equal(r.calls.at(-1), 'resolvectl revert mesh0', 'stop reverts the link');
  t.equal(s.status().applied, false);
});

t.test('a failing resolvectl is reported and half-done work undone', async (t) => {
  const r = recorder({ 'resolvectl domain': { ok: false, stderr: 'Failed to set domain configuration: Access denied' } });
  const s = new SplitDns('mesh0', r.run, probe(true));
  await s.apply('mesh', ['100.64.0.1']);
  t.match(s.status().error, /Access denied/);
  t.equal(r.calls.at(-1), 'resolvectl revert mesh0');
  t.equal(s.status().applied, false);
});

t.test('resolvconf only where it manages resolv.conf', async (t) => {
  const managed = recorder({ 'resolvconf -l': { stdout: '# resolv.conf from eth0\nnameserver 192.0.2.53\n\n' } });
  const a = new SplitDns('mesh0', managed.run, probe(false));
  await a.apply('mesh', ['100.64.0.1', 'fd7a::1']);
  t.same(managed.calls, ['resolvconf -l', 'resolvconf -a tun.mesh0.mesh -m 0 <<< "nameserver 100.64.0.1\\nsearch mesh\\n"'], 'a record with the IPv4 server first and the search domain');
  await a.remove();
  t.equal(managed.calls.at(-1), 'resolvconf -d tun.mesh0.mesh -f');

  const unmanaged = recorder({ 'resolvconf -l': { stdout: '' } });
  const b = new SplitDns('mesh0', unmanaged.run, probe(false));
  await b.apply('mesh', ['100.64.0.1']);
  t.same(unmanaged.calls, ['resolvconf -l'], 'no other record: resolv.conf is not resolvconf\'s, nothing is written');
  t.match(b.status().hint, /point the host's resolver at 100\.64\.0\.1 for mesh/);

  const debian = recorder({ 'resolvconf -l': { ok: false, stderr: 'Unknown option' }, 'resolvconf -a tun.mesh0.mesh -m': { ok: false, stderr: 'resolvconf: Error: Unknown option -m' } });
  const c = new SplitDns('mesh0', debian.run, probe(false, ['eth0.dhclient']));
  await c.apply('mesh', ['100.64.0.1']);
  t.equal(debian.calls.at(-1), 'resolvconf -a tun.mesh0.mesh <<< "nameserver 100.64.0.1\\nsearch mesh\\n"', "Debian's resolvconf: its records are read from /run, and no metric is given");
  t.equal(c.status().applied, true);

  const none = recorder({ 'resolvconf -l': { ok: false, missing: true } });
  const d = new SplitDns('mesh0', none.run, probe(false));
  await d.apply('mesh', ['100.64.0.1']);
  t.same([d.status().backend, d.status().applied], ['none', false], 'neither installed: nothing done, a hint given');
  t.ok(d.status().hint);
});
