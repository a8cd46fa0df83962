// Names on a static config (Domain = in [Interface], [Peer] Name =) and split DNS on the host: the
// daemon registers its name server with resolvconf when resolvconf manages the namespace's
// resolv.conf, the C library resolves NAME.DOMAIN (and NAME, by the search domain) through it and
// every other name through the upstream resolver, and stopping undoes it. Where resolvconf holds no
// other record the resolver is left alone and status says how to point one at the name server.
// Each namespace's resolv.conf and resolvconf state are the lab's own (src/lab/netns-lab.ts).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';
import { controlRequest } from '../../src/control/control.js';
import { packageRoot } from '../../src/package-root.js';
import type { DaemonStatus } from '../../src/daemon/status.js';

const DNS_STUB = join(packageRoot(), 'dist', 'test', 'helpers', 'dns-stub.js');
const why = labUnavailable(['ping', 'dig', 'resolvconf', 'getent']);

if (why) t.plan(0, why);
else {
  t.test('Domain = names the static peers; resolvconf routes them to the daemon while it runs', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    // Host a's resolv.conf is managed by resolvconf, with an upstream resolver (its "DHCP" record).
    // (Not on 127.0.0.1: resolvconf then assumes a local caching resolver it feeds, and lists only it.)
    t.equal((await lab.exec(h.a.ns, 'ip', ['addr', 'add', '198.51.100.53/32', 'dev', 'lo'])).code, 0, 'the LAN resolver\'s address');
    const stub = lab.spawn(h.a.ns, process.execPath, [DNS_STUB, '198.51.100.53', '192.0.2.99']);
    t.ok(await waitFor(() => stub.log.join('').includes('listening'), 5000), 'an upstream resolver on 198.51.100.53');
    const reg = await lab.exec(h.a.ns, 'sh', ['-c', 'printf "nameserver 198.51.100.53\\n" | resolvconf -a eth0 -m 100']);
    t.equal(reg.code, 0, `resolvconf holds the upstream record ${reg.stderr}`);
    t.ok((await lab.exec(h.a.ns, 'getent', ['ahostsv4', 'www.example'])).stdout.includes('192.0.2.99'), 'before meshd: names resolve upstream');
    const bConfBefore = readFileSync(lab.resolvConf(h.b.ns), 'utf8');

    const pa = await lab.meshd(h.a.ns, lab.file(`${h.a.iface}.conf`, meshConfig(h.a, h.b, { extraInterface: 'Domain = lab', peerName: 'bob' })), h.a.iface);
    const pb = await lab.meshd(h.b.ns, lab.file(`${h.b.iface}.conf`, meshConfig(h.b, h.a, { extraInterface: 'Domain = lab', peerName: 'alice' })), h.b.iface);
    t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '2', h.b.mesh4])).code, 0, 'the tunnel works');

    const dig = async (ns: string, at: string, ...q: string[]) => (await lab.exec(ns, 'dig', ['+short', '+time=1', '+tries=2', `@${at}`, ...q])).stdout.trim();
    t.equal(await dig(h.a.ns, h.a.mesh4, 'bob.lab', 'A'), h.b.mesh4, 'a: bob.lab A');
    t.equal(await dig(h.a.ns, h.a.mesh4, 'BOB.lab', 'AAAA'), h.b.mesh6, 'a: BOB.lab AAAA');
    t.equal(await dig(h.a.ns, h.a.mesh4, '-x', h.b.mesh4), 'bob.lab.', 'a: PTR of bob\'s address');
    t.equal(await dig(h.b.ns, h.b.mesh4, 'alice.lab', 'A'), h.a.mesh4, 'b: alice.lab A');

    const resolv = readFileSync(lab.resolvConf(h.a.ns), 'utf8');
    t.match(resolv, new RegExp(`nameserver ${h.a.mesh4.replace(/\./g, '\\.')}\\n(.*\\n)*nameserver 198\\.51\\.100\\.53`), `a's resolv.conf: the name server first, then upstream\n${resolv}`);
    t.match(resolv, /^search lab$/m, 'and the search domain');
    const getent = async (...q: string[]) => (await lab.exec(h.a.ns, 'getent', q)).stdout;
    t.match(await getent('ahostsv4', 'bob.lab'), new RegExp(`^${h.b.mesh4.replace(/\./g, '\\.')} `), 'the C library resolves bob.lab through the daemon');
    t.match(await getent('ahostsv4', 'bob'), new RegExp(`^${h.b.mesh4.replace(/\./g, '\\.')} `), 'and bob, by the search domain');
    t.match(await getent('ahostsv4', 'www.example'), /^192\.0\.2\.99 /, 'other names still resolve upstream (REFUSED here, the next server answers)');
    const sa = (await controlRequest(h.a.iface, { cmd: 'status' })) as DaemonStatus;
    t.same([sa.names?.domain, sa.names?.resolver.backend, sa.names?.resolver.applied], ['lab', 'resolvconf', true], 'status: registered with resolvconf');
    t.match((await lab.cli(['status', h.a.iface])).stdout, /names: lab on .*\n\s+host resolver: resolvconf \(resolvconf record, search lab\)/, 'meshd status says so');

    // b: resolvconf holds nothing, so resolv.conf is not resolvconf's to rewrite.
    const sb = (await controlRequest(h.b.iface, { cmd: 'status' })) as DaemonStatus;
    t.equal(sb.names?.resolver.applied, false, 'b: not registered');
    t.match(sb.names?.resolver.hint ?? '', new RegExp(`point the host's resolver at ${h.b.mesh4.replace(/\./g, '\\.')} for lab`), 'and status says how to point a resolver at it');
    t.equal(readFileSync(lab.resolvConf(h.b.ns), 'utf8'), bConfBefore, 'b\'s resolv.conf is untouched');

    pa.kill('SIGTERM');
    t.ok(await waitFor(() => pa.exitCode !== null, 10_000), 'a stopped');
    const after = readFileSync(lab.resolvConf(h.a.ns), 'utf8');
    t.notMatch(after, new RegExp(`nameserver ${h.a.mesh4.replace(/\./g, '\\.')}`), `stopping removed the name server from resolv.conf\n${after}`);
    t.notMatch(after, /search lab/, 'and the search domain');
    t.notMatch((await lab.exec(h.a.ns, 'resolvconf', ['-l'])).stdout, /tun\./, 'resolvconf holds no meshd record');
    t.ok((await getent('ahostsv4', 'www.example')).includes('192.0.2.99'), 'upstream names still resolve');
    pb.kill('SIGTERM');
  });

  t.test('Domain is refused beside MeshKey, and checked', async (t) => {
    const lab = new Lab(t);
    const bad = lab.file('bad.conf', '[Interface]\nPrivateKey = 8NrVQQdDsm6rDoTv0GQ1TGwBAqcmMN8wZ7m+ZuL7LXQ=\nDomain = -bad-\n');
    const r = await lab.cli(['up', bad]);
    t.not(r.code, 0, 'a bad domain is an error');
    t.match(r.stderr, /bad\.conf:3: \[Interface\] Domain: "-bad-" is not a DNS domain/, r.stderr.trim());
  });
}
