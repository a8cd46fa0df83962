// The NAT's mapping behaviour from the data socket's STUN results, and the second opinion from a
// fresh socket (transport/endpoints.ts, transport/mapping-check.ts): a symmetric NAT whose two
// mappings agree by chance is still told apart. The fresh-socket check runs against two STUN
// responders on loopback; one can answer with another port, as a symmetric NAT would make it look.
import t from 'tap';
import dgram from 'node:dgram';
import stun from 'stun';
import { OwnEndpoints } from '../src/transport/endpoints.js';
import { mappingVariesFromFreshSocket } from '../src/transport/mapping-check.js';
import { StunService } from '../src/transport/stun-service.js';
import type { NetworkWatch } from '../src/transport/network-watch.js';
import { createLogger } from '../src/log.js';
import type { StunResult } from '../src/transport/stun-client.js';

const at = (server: string, address: string, port: number): StunResult => ({ server, mapped: { address, port }, rttMs: 1 });

t.test('the data socket\'s mappings, and a second opinion for the same mapping', async (t) => {
  const own = new OwnEndpoints('meshd-none', () => 51820);
  t.equal(own.mappingVariesByDestination(), null, 'no round yet: unknown');
  own.update([at('s1', '203.0.113.2', 40000), { server: 's2', mapped: null, rttMs: null, error: 'no response' }]);
  t.equal(own.mappingVariesByDestination(), null, 'one answer: unknown');
  t.notOk(own.needsSecondOpinion(), 'nothing to check');
  own.update([at('s1', '203.0.113.2', 40000), at('s2', '203.0.113.2', 40001)]);
  t.equal(own.mappingVariesByDestination(), true, 'two ports: varies');
  t.notOk(own.needsSecondOpinion(), 'no check when they already differ');

  own.update([at('s1', '203.0.113.2', 40000), at('s2', '203.0.113.2', 40000)]);
  t.equal(own.mappingVariesByDestination(), false, 'the same port twice: independent, until asked again');
  t.ok(own.needsSecondOpinion(), 'a check is due');
  own.noteSecondOpinion(own.mappingKey(), true);
  t.equal(own.mappingVariesByDestination(), true, 'a fresh socket\'s mappings differed: varies');
  t.notOk(own.needsSecondOpinion(), 'once per mapping');
  t.equal(own.verdict([at('s1', '203.0.113.2', 40000), at('s2', '203.0.113.2', 40000)]), true, 'a netcheck round of the same mapping: varies too');

  own.update([at('s1', '198.51.100.7', 51000), at('s2', '198.51.100.7', 51000)]);
  t.equal(own.mappingVariesByDestination(), false, 'a new mapping (another network): the old opinion does not carry over');
  t.ok(own.needsSecondOpinion(), 'checked again');
  own.noteSecondOpinion(own.mappingKey(), false);
  t.equal(own.mappingVariesByDestination(), false, 'a fresh socket agreed too: independent');
  t.notOk(own.needsSecondOpinion());
});

/**
 * A STUN responder on loopback that reports the sender's port plus `shift` (a function of that
 * port, or a number), or stays silent (null).
 */
async function responder(shift: number | null | ((port: number) => number)): Promise<{ port: number; close: () => void; requests: number[] }> {
  const sock = dgram.createSocket('udp4');
  const requests: number[] = [];
  sock.on('message', (m, rinfo) => {
    requests.push(rinfo.port);
    if (shift === null) return;
    const req = stun.decode(m);
    const res = stun.createMessage(stun.constants.STUN_BINDING_RESPONSE, req.transactionId);
    res.addXorAddress(rinfo.address, rinfo.port + (typeof shift === 'number' ? shift : shift(rinfo.port)));
    sock.send(stun.encode(res), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return { port: sock.address().port, close: () => sock.close(), requests };
}

t.test('a fresh socket: both answers the same port, a different one, or too few', async (t) => {
  const same = await responder(0);
  const other = await responder(7);
  const silent = await responder(null);
  t.teardown(() => [same, other, silent].forEach((r) => r.close()));
  const servers = (...rs: { port: number }[]) => rs.map((r, i) => ({ name: `s${i}`, ep: { address: '127.0.0.1', port: r.port } }));

  t.equal(await mappingVariesFromFreshSocket(servers(same, same), 1000), false, 'the same mapping from both: independent');
  t.equal(await mappingVariesFromFreshSocket(servers(same, other), 1000), true, 'another port from one: varies');
  t.equal(await mappingVariesFromFreshSocket(servers(same, silent), 300), null, 'one answer only: unknown');
  t.equal(await mappingVariesFromFreshSocket([{ name: 'v6', ep: { address: '::1', port: same.port } }, ...servers(same)], 300), null, 'IPv6 servers are not asked');
  const stop = new AbortController();
  const started = Date.now();
  const pending = mappingVariesFromFreshSocket(servers(same, silent), 5000, stop.signal);
  setTimeout(() => stop.abort(), 100);
  t.equal(await pending, null, 'stopped while waiting: unknown');
  t.ok(Date.now() - started < 2000, `at once, not after the timeout (${Date.now() - started} ms)`);
  const ports = new Set(same.requests);
  t.ok(ports.size >= 4, `each check from a socket of its own (${ports.size} source ports)`);
  t.notOk(ports.has(51820), 'never the data socket\'s port');
});

t.test('the daemon\'s STUN service: the second opinion when the data socket\'s mappings agree, not where a fresh socket would enter the tunnel', async (t) => {
  // The data socket gets the same mapping from both servers; any other socket gets another port from
  // the second: a symmetric NAT whose two mappings agreed for the data socket by chance.
  const data = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => data.bind(0, '127.0.0.1', resolve));
  const dataPort = data.address().port;
  const s1 = await responder(0);
  const s2 = await responder((port) => (port === dataPort ? 0 : 5));
  t.teardown(() => [s1, s2].forEach((r) => r.close()));
  t.teardown(() => data.close());
  const watch = { generation: () => 0 } as unknown as NetworkWatch;
  const servers = [{ host: '127.0.0.1', port: s1.port }, { host: '127.0.0.1', port: s2.port }];
  const service = (route: (addrs: string[]) => number | null) => {
    let changes = 0;
    const svc = new StunService('meshd-none', () => dataPort, (b, to) => data.send(b, to.port, to.address), () => void changes++, createLogger('silent'), watch, route);
    data.removeAllListeners('message');
    data.on('message', (m) => void svc.onDatagram(m));
    return { svc, changes: () => changes };
  };
  const until = async (f: () => boolean) => {
    for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 20));
  };

  const a = service(() => 0);
  await a.svc.start(servers, [], 'test.conf');
  await until(() => a.svc.own.mappingVariesByDestination() === true);
  t.equal(a.svc.own.mappingVariesByDestination(), true, 'a fresh socket\'s mappings differ: varies');
  t.equal(a.changes(), 2, 'candidates told twice: the endpoints, then the verdict');
  a.svc.stop();

  const beforeB = s2.requests.length;
  const seen = { addrs: [] as string[] };
  const b = service((addrs) => {
    seen.addrs = addrs;
    return null;
  });
  await b.svc.start(servers, [], 'test.conf');
  await until(() => b.svc.own.mappingVariesByDestination() !== null);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(b.svc.own.mappingVariesByDestination(), false, 'no fresh socket where it would enter the tunnel: the data socket\'s verdict stands');
  t.same(seen.addrs, ['127.0.0.1', '127.0.0.1'], 'asked about the STUN servers\' addresses');
  t.ok(s2.requests.length > beforeB && s2.requests.slice(beforeB).every((p) => p === dataPort), 'only the data socket sent');
  b.svc.stop();
  const beforeC = s2.requests.length;

  let epoch = 0;
  const c = service(() => epoch++);
  await c.svc.start(servers, [], 'test.conf');
  await until(() => c.svc.own.mappingVariesByDestination() !== null);
  await new Promise((r) => setTimeout(r, 300));
  t.ok(s2.requests.slice(beforeC).some((p) => p !== dataPort), 'a fresh socket asked');
  t.equal(c.svc.own.mappingVariesByDestination(), false, 'the routes changed during the check: its answer is not believed');
  c.svc.stop();
});
