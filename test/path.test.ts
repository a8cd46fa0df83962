// Path choice (transport/path.ts): which way a packet to a peer leaves. Pure.
import t from 'tap';
import { choosePath, goesToUntrusted, DIRECT_PATH_TRUST_MS, RELAY_PATH_PROVEN_MS } from '../src/transport/path.js';
import { MSG_INITIATION, MSG_TRANSPORT } from '../src/wire/wireguard.js';

const ep = { address: '192.0.2.2', port: 51820 };
const now = 100_000;

t.test('a trusted direct path carries everything', async (t) => {
  const c = choosePath({ endpoint: ep, lastDirectRxMs: now - 1000, lastRelayRxMs: now - 10 }, now, true);
  t.same([c.direct, c.untrusted, c.relay, c.why], [ep, null, false, null]);
});

t.test('no relay: the endpoint, trusted or not', async (t) => {
  const c = choosePath({ endpoint: ep, lastDirectRxMs: 0, lastRelayRxMs: 0 }, now, false);
  t.same([c.direct, c.relay], [ep, false]);
});

t.test('relay proven, endpoint not trusted: data through the relay only, handshakes and keepalives to both', async (t) => {
  const c = choosePath({ endpoint: ep, lastDirectRxMs: now - DIRECT_PATH_TRUST_MS - 1, lastRelayRxMs: now - 100 }, now, true);
  t.same([c.direct, c.untrusted, c.relay], [null, ep, true]);
  t.match(c.why, /no direct reply from the endpoint in the last 5 s/);
  const data = new Uint8Array(32 + 100);
  data[0] = MSG_TRANSPORT;
  const keepalive = new Uint8Array(32);
  keepalive[0] = MSG_TRANSPORT;
  const init = new Uint8Array(148);
  init[0] = MSG_INITIATION;
  t.notOk(goesToUntrusted(data), 'a data packet does not');
  t.ok(goesToUntrusted(keepalive), 'a keepalive does');
  t.ok(goesToUntrusted(init), 'an initiation does');
});

t.test('relay not proven (a stock WireGuard peer is never on it): data goes both ways', async (t) => {
  for (const lastRelayRxMs of [0, now - RELAY_PATH_PROVEN_MS - 1]) {
    const c = choosePath({ endpoint: ep, lastDirectRxMs: now - 6000, lastRelayRxMs }, now, true);
    t.same([c.direct, c.untrusted, c.relay], [ep, null, true]);
  }
});

t.test('no endpoint: the relay', async (t) => {
  const c = choosePath({ endpoint: null, lastDirectRxMs: 0, lastRelayRxMs: 0 }, now, true);
  t.same([c.direct, c.untrusted, c.relay, c.why], [null, null, true, 'no endpoint known']);
});

t.test('in the first seconds of a daemon (its clock starts near 0), an endpoint that never answered is not trusted', async (t) => {
  const c = choosePath({ endpoint: ep, lastDirectRxMs: 0, lastRelayRxMs: 0 }, 1200, true);
  t.same([c.direct, c.relay], [ep, true], 'the relay carries it too');
  t.match(c.why, /no direct reply from the endpoint yet/);
});
