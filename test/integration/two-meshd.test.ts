// Two meshd hosts with static endpoints in network namespaces: ping both ways over IPv4 and
// IPv6, a 100 MB TCP transfer with matching checksum, status, and clean shutdown.
import t from 'tap';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { exited, Lab, labUnavailable, MESHD_BIN } from '../helpers/lab.js';
import { meshConfig, meshdBoth, transfer, twoHosts, udpEcho } from '../helpers/two-hosts.js';

const [major, minor] = release().split('.').map(Number);
const kernelHasUso = major > 6 || (major === 6 && minor >= 2);

// Three UDP_SEGMENT sends of 1,200-byte segments (40, 40, then 39 and a 700-byte last) from
// `fromNs` to a socket at `toAddr` in `toNs`: the sizes and SHA-256 sent and received.
const SEG_SEND = `import socket, sys, hashlib, json, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1200)
sizes, h = [], hashlib.sha256()
for n, k in enumerate([48000, 48000, 47500]):
    data = bytes((n * 7 + i) % 253 for i in range(k))
    s.sendto(data, (sys.argv[1], 5401))
    for off in range(0, k, 1200):
        sizes.append(min(1200, k - off))
    h.update(data)
    time.sleep(0.05)
print(json.dumps({'sizes': sizes, 'sha': h.hexdigest()}))
`;
const SEG_RECV = `import socket, sys, hashlib, json
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: room for every datagram at once
s.bind((sys.argv[1], 5401))
s.settimeout(5)
print('listening', flush=True)
sizes, h = [], hashlib.sha256()
try:
    while len(sizes) < 120:
        d = s.recv(65535)
        sizes.append(len(d))
        h.update(d)
except socket.timeout:
    pass
print(json.dumps({'sizes': sizes, 'sha': h.hexdigest()}), flush=True)
`;
async function udpSegmentThrough(lab: Lab, fromNs: string, toNs: string, toAddr: string) {
  const server = lab.spawn(toNs, 'python3', ['-c', SEG_RECV, toAddr]);
  for (let i = 0; i < 100 && !server.log.join('').includes('listening'); i++) await new Promise((r) => setTimeout(r, 50));
  const sent = await lab.exec(fromNs, 'python3', ['-c', SEG_SEND, toAddr], 30_000);
  for (let i = 0; i < 200 && server.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  const lines = server.log.join('').split('\n').filter((l) => l.startsWith('{'));
  const none = { sizes: [] as number[], sha: '' };
  return {
    sent: sent.code === 0 ? (JSON.parse(sent.stdout) as typeof none) : none,
    got: lines.length > 0 ? (JSON.parse(lines[0]) as typeof none) : none,
    err: sent.stderr.trim(),
  };
}

const why = labUnavailable(['ping', 'python3']);
if (why) t.plan(0, why);
else {
  t.test('two meshd hosts reach each other over the mesh', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const { pa, pb } = await meshdBoth(h);

    for (const [from, to] of [
      [h.a, h.b],
      [h.b, h.a],
    ]) {
      const p4 = await lab.exec(from.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', to.mesh4]);
      t.equal(p4.code, 0, `IPv4 ping ${from.mesh4} -> ${to.mesh4}\n${p4.stdout}`);
      const p6 = await lab.exec(from.ns, 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', to.mesh6]);
      t.equal(p6.code, 0, `IPv6 ping ${from.mesh6} -> ${to.mesh6}\n${p6.stdout}`);
    }

    const bytes = 100 * 1024 * 1024;
    const r = await transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, bytes);
    t.match(r.sent, new RegExp(`^${bytes} [0-9a-f]{64}$`), `sender finished: ${r.sendErr}`);
    t.equal(r.received, r.sent, '100 MB arrived with the same SHA-256');

    // Several flows at once, in both directions, over IPv4 and IPv6: the TUN's GRO merges segments
    // per flow while other flows' segments (and ACKs) interleave in the same batches.
    const flows = await Promise.all([
      transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, 16 * 1024 * 1024, 5211),
      transfer(lab, h.a.ns, h.b.ns, h.b.mesh6, 16 * 1024 * 1024, 5212),
      transfer(lab, h.b.ns, h.a.ns, h.a.mesh4, 16 * 1024 * 1024, 5213),
      transfer(lab, h.b.ns, h.a.ns, h.a.mesh6, 16 * 1024 * 1024, 5214),
    ]);
    flows.forEach((f, i) => {
      t.match(f.sent, /^16777216 [0-9a-f]{64}$/, `flow ${i + 1} sender finished: ${f.sendErr}`);
      t.equal(f.received, f.sent, `flow ${i + 1} of 4 concurrent (v4/v6, both ways): same SHA-256`);
    });

    // A socket's UDP_SEGMENT sends (one superpacket each into A's TUN, with USO) arrive at B's
    // socket as the datagrams they stand for, whole and in order, over IPv4 and IPv6.
    for (const to of [h.b.mesh4, h.b.mesh6]) {
      const u = await udpSegmentThrough(lab, h.a.ns, h.b.ns, to);
      t.same(u.got.sizes, u.sent.sizes, `UDP_SEGMENT to ${to}: ${u.sent.sizes.length} datagrams of the sizes sent (${u.err})`);
      t.equal(u.got.sha, u.sent.sha, `UDP_SEGMENT to ${to}: the same bytes, in order`);
    }

    const st = await lab.cli(['status', h.a.iface, '--json']);
    t.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout);
    t.equal(s.peers.length, 1);
    t.equal(s.peers[0].publicKey, h.b.keys.pub);
    t.same(s.peers[0].path, { kind: 'direct', endpoint: '192.0.2.2:51820' });
    t.ok(s.peers[0].txBytes > bytes, 'tx counter covers the transfer');
    t.ok(s.peers[0].latestHandshake > Date.now() - 60_000, 'recent handshake');
    const human = await lab.cli(['status', h.b.iface]);
    t.match(human.stdout, /path: direct 192\.0\.2\.1:51820/);

    // meshd down removes the interface and its sockets; SIGTERM does the same.
    const down = await lab.cli(['down', h.a.iface]);
    t.equal(down.code, 0, down.stderr);
    await exited(pa);
    t.equal(pa.exitCode, 0, 'daemon exits 0 after meshd down');
    const links = await lab.exec(h.a.ns, 'ip', ['link', 'show', h.a.iface]);
    t.not(links.code, 0, 'interface gone after down');
    const routes = await lab.exec(h.a.ns, 'ip', ['route', 'show', 'dev', h.a.iface]);
    t.equal(routes.stdout.trim(), '', 'no routes left');
    t.notOk(existsSync(`/var/run/wireguard/${h.a.iface}.sock`), 'UAPI socket removed');
    t.notOk(existsSync(`/var/run/meshd/${h.a.iface}.sock`), 'control socket removed');
    pb.kill('SIGTERM');
    await exited(pb);
    t.equal(pb.exitCode, 0, 'daemon exits 0 on SIGTERM');
    t.not((await lab.exec(h.b.ns, 'ip', ['link', 'show', h.b.iface])).code, 0, 'interface gone after SIGTERM');
  });

  t.test('after kill -9 nothing stops the next meshd up', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const { pa } = await meshdBoth(h);
    pa.kill('SIGKILL');
    await exited(pa);
    t.not((await lab.exec(h.a.ns, 'ip', ['link', 'show', h.a.iface])).code, 0, 'the kernel removed the TUN with the process');
    const again = await lab.meshd(h.a.ns, `${lab.dir}/${h.a.iface}.conf`, h.a.iface);
    t.ok(again.pid, 'meshd up works again (stale sockets replaced)');
    const p = await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.3', '-W', '3', h.b.mesh4]);
    t.equal(p.code, 0, 'and the tunnel works');
  });
}

if (!why) {
  t.test('a malformed config exits 1 with one line and creates nothing', async (t) => {
    const lab = new Lab(t);
    const ns = await lab.ns('x');
    const iface = `${lab.id}x`;
    const conf = lab.file(`${iface}.conf`, '[Interface]\nPrivateKey = nope\nAddress = 10.9.0.1/24\n');
    const r = await lab.exec(ns, process.execPath, [MESHD_BIN, 'up', conf]);
    t.equal(r.code, 1);
    t.equal(r.stderr, `meshd: ${conf}:2: [Interface] PrivateKey: not a base64-encoded 32-byte key\n`);
    t.not((await lab.exec(ns, 'ip', ['link', 'show', iface])).code, 0, 'no interface');
    t.notOk(existsSync(`/var/run/wireguard/${iface}.sock`), 'no UAPI socket');
    t.notOk(existsSync(`/var/run/meshd/${iface}.sock`), 'no control socket');
    const good = lab.file(`${iface}-ok.conf`, `[Interface]\nPrivateKey = ${(await lab.cli(['genkey'])).stdout.trim()}\nAddress = 10.9.0.1/24\n`);
    const threads = await lab.exec(ns, 'env', ['MESHD_AEAD_THREADS=lots', process.execPath, MESHD_BIN, 'up', good, '--interface', iface]);
    t.equal(threads.code, 1);
    t.equal(threads.stderr, 'meshd: MESHD_AEAD_THREADS=lots: expected a whole number of threads from 1 to 8\n', 'a bad MESHD_AEAD_THREADS is one line too');
    t.not((await lab.exec(ns, 'ip', ['link', 'show', iface])).code, 0, 'and creates no interface');
  });
}

if (!why) {
  t.test('peers over an IPv6-only underlay', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const nsA6 = await lab.ns('p');
    const nsB6 = await lab.ns('q');
    await lab.run('ip', ['-n', nsA6, 'link', 'set', 'lo', 'up']);
    const [va, vb] = await lab.link(nsA6, '192.0.2.101/32', nsB6, '192.0.2.102/32');
    await lab.exec(nsA6, 'ip', ['-6', 'addr', 'add', '2001:db8::1/64', 'dev', va, 'nodad']);
    await lab.exec(nsB6, 'ip', ['-6', 'addr', 'add', '2001:db8::2/64', 'dev', vb, 'nodad']);
    const a = { ...h.a, ns: nsA6, underlay: '2001:db8::1' };
    const b = { ...h.b, ns: nsB6, underlay: '2001:db8::2' };
    const confA = meshConfig(a, b).replace('Endpoint = 2001:db8::2:51820', 'Endpoint = [2001:db8::2]:51820');
    await lab.meshd(nsA6, lab.file('a6.conf', confA), a.iface);
    await lab.meshd(nsB6, lab.file('b6.conf', meshConfig(b, a, { endpoint: false })), b.iface);
    const p = await lab.exec(nsA6, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', b.mesh4]);
    t.equal(p.code, 0, p.stdout);
    const s = JSON.parse((await lab.cli(['status', b.iface, '--json'])).stdout);
    t.equal(s.peers[0].endpoint, '[2001:db8::1]:51820', 'the IPv6 endpoint was learned');
  });
}

if (!why) {
  t.test('fast path (batched UDP, TUN TSO/GRO, in-place AEAD) against the fallback (dgram, plain TUN, pure-JS AEAD): same bytes', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b)), h.a.iface, { MESHD_AEAD: 'noble', MESHD_FASTPATH: 'off' });
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface);
    const sa = JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout) as { dataPath: { udp: string; tunOffload: boolean; aead: string } };
    const sb = JSON.parse((await lab.cli(['status', h.b.iface, '--json'])).stdout) as { dataPath: { udp: string; tunOffload: boolean; tunUso: boolean; aead: string } };
    t.same(sa.dataPath, { udp: 'dgram', tunOffload: false, tunUso: false, aead: 'noble' }, 'A runs the fallback');
    t.equal(sb.dataPath.tunOffload, true, 'B offloads TCP segmentation to and from its TUN');
    t.equal(sb.dataPath.tunUso, kernelHasUso, `B offloads UDP segmentation too where the kernel can (Linux ${release()})`);
    t.match(sb.dataPath.udp, /^native/, 'B batches UDP in the addon');
    const bytes = 8 * 1024 * 1024;
    for (const [label, toB, toA] of [['IPv4', h.b.mesh4, h.a.mesh4], ['IPv6', h.b.mesh6, h.a.mesh6]] as const) {
      const r = await transfer(lab, h.a.ns, h.b.ns, toB, bytes);
      t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
      t.equal(r.received, r.sent, `${label} TCP fallback → fast path: the bytes match end to end`);
      const back = await transfer(lab, h.b.ns, h.a.ns, toA, bytes, 5202);
      t.match(back.sent, new RegExp(`^${bytes} `), back.sendErr);
      t.equal(back.received, back.sent, `${label} TCP fast path (TSO segments) → fallback: the bytes match`);
      t.equal(await udpEcho(lab, h.a.ns, h.b.ns, toB), '45/45 identical', `${label} UDP of every size, checksums completed by the fast path, echoed intact`);
      t.equal(await udpEcho(lab, h.b.ns, h.a.ns, toA, 5302), '45/45 identical', `${label} UDP from the fast-path side`);
    }
  });
}

if (!why) {
  t.test('AEAD spread over helper threads (MESHD_AEAD_THREADS=3) against the fallback: same bytes', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b)), h.a.iface, { MESHD_AEAD: 'noble', MESHD_FASTPATH: 'off' });
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface, { MESHD_AEAD_THREADS: '3' });
    const sb = JSON.parse((await lab.cli(['status', h.b.iface, '--json'])).stdout) as { dataPath: { aead: string } };
    t.equal(sb.dataPath.aead, 'native (3 threads)', 'status says how many threads seal and open');
    const bytes = 16 * 1024 * 1024;
    const r = await transfer(lab, h.a.ns, h.b.ns, h.b.mesh4, bytes);
    t.match(r.sent, new RegExp(`^${bytes} `), r.sendErr);
    t.equal(r.received, r.sent, 'TCP into B (batches opened on several threads): the bytes match');
    const back = await transfer(lab, h.b.ns, h.a.ns, h.a.mesh4, bytes, 5202);
    t.match(back.sent, new RegExp(`^${bytes} `), back.sendErr);
    t.equal(back.received, back.sent, 'TCP out of B (TSO superpackets sealed on several threads): the bytes match');
    t.equal(await udpEcho(lab, h.b.ns, h.a.ns, h.a.mesh4, 5302), '45/45 identical', 'UDP of every size echoed intact');
  });
}
