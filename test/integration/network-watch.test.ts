// The daemon notices link and address changes on its host through route netlink notifications
// (transport/network-watch.ts): an MTU that `ip link set` (wg-quick) gives its interface after
// start, and a new address on the underlay (the host moved networks: a STUN round at once).
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['ip']);

if (why) t.plan(0, why);
else {
  t.test('a daemon follows its interface MTU and its host addresses as they change', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MTU = 1420' })), h.a.iface);
    const log = () => ma.log.join('');
    t.notMatch(log(), /interface MTU changed/, 'no MTU change at start: the daemon set 1420 itself');

    await lab.exec(h.a.ns, 'ip', ['link', 'set', h.a.iface, 'mtu', '1300']);
    t.ok(await waitFor(() => /"mtu":1300,"previous":1420[^\n]*interface MTU changed/.test(log()), 5000), 'the new MTU is followed');

    const veth = (await lab.exec(h.a.ns, 'sh', ['-c', "ip -o link show type veth | cut -d: -f2 | cut -d@ -f1 | tr -d ' '"])).stdout.trim();
    t.ok(veth, 'the underlay veth');
    t.notMatch(log(), /network change/, 'no network change before one is made');
    await lab.exec(h.a.ns, 'ip', ['addr', 'add', '198.51.100.7/32', 'dev', veth]);
    t.ok(await waitFor(() => /interface addresses changed/.test(log()), 8000), 'a new underlay address is a network change');
    type St = { endpoints: { endpoint: string; source: string }[] };
    const status = async () => JSON.parse((await lab.cli(['status', h.a.iface, '--json'])).stdout) as St;
    t.ok(
      await waitFor(async () => (await status()).endpoints.some((e) => e.endpoint === '198.51.100.7:51820' && e.source === 'local'), 5000),
      'and the new address is one of its own endpoints in meshd status',
    );
  });
}
