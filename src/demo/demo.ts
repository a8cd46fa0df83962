// meshd demo: on one machine, a small internet in network namespaces (a relay with STUN, two hosts
// each behind its own NAT router), meshd on both hosts, and a ping that starts relayed and turns
// direct once the hole punch succeeds. Everything is removed on exit or Ctrl-C.
import { Lab, labUnavailable } from '../lab/netns-lab.js';
import { cutUdpBetweenRouters, natConfig, natWorld, relayArgs, type NatWorld } from '../lab/nat-world.js';
import { controlRequest } from '../control/control.js';
import type { PongReply } from '../daemon/daemon.js';
import { MeshdError } from '../errors.js';

const say = (s: string) => process.stdout.write(s + '\n');

/** One `meshd ping` round from alice to bob, printed; waits so rounds are about 500 ms apart. */
async function pingOnce(w: NatWorld): Promise<PongReply[]> {
  const started = Date.now();
  const r = (await controlRequest(w.a.iface, { cmd: 'ping', peer: 'bob' }, 10_000)) as { replies: PongReply[] };
  for (const p of r.replies) say(`  pong from bob via ${p.via} in ${p.rttMs.toFixed(0)}ms`);
  if (r.replies.length === 0) say('  (no reply yet)');
  const wait = 500 - (Date.now() - started);
  if (wait > 0) await new Promise((res) => setTimeout(res, wait));
  return r.replies;
}

export async function demo(): Promise<void> {
  const why = labUnavailable(['nft', 'conntrack', 'openssl']);
  if (why) throw new MeshdError('EDEMO', `demo ${why}`);
  const teardowns: (() => unknown)[] = [];
  const lab = new Lab({ teardown: (fn) => teardowns.push(fn) }, { onSignals: false }); // its own handlers below say what they removed
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const f of teardowns) await f();
      say(`removed the demo's namespaces (${lab.id}*), processes and files`);
    })());
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`building a small internet in network namespaces ${lab.id}* ...`);
    const w = await natWorld(lab, ['eim', 'eim']);
    say(`  relay + STUN   ${w.relayAddrs.join(', ')} (meshd-relay over TLS, self-signed)`);
    say(`  alice  ${w.a.lanAddr} behind NAT ${w.a.wanAddr}   mesh ${w.a.mesh4}`);
    say(`  bob    ${w.b.lanAddr} behind NAT ${w.b.wanAddr}   mesh ${w.b.mesh4}`);
    await lab.relay(w.relayNs, relayArgs(w));
    say('a firewall between the two NATs drops UDP for now: only the relay (TCP) gets through');
    await cutUdpBetweenRouters(w, true);
    say('starting meshd on alice and bob: each knows only the other\'s public key and the relay');
    await lab.meshd(w.a.ns, lab.file('alice.conf', natConfig(w, w.a, w.b)), w.a.iface);
    await lab.meshd(w.b.ns, lab.file('bob.conf', natConfig(w, w.b, w.a)), w.b.iface);
    say('alice: meshd ping bob');
    let relayed = 0;
    for (let i = 0; i < 40 && relayed < 3; i++) relayed += (await pingOnce(w)).filter((p) => !p.direct).length;
    say('the firewall opens UDP: the next hole punch finds the direct path');
    await cutUdpBetweenRouters(w, false);
    const started = Date.now();
    say('alice: meshd ping bob --until-direct');
    let direct = false;
    for (let i = 0; i < 40 && !direct; i++) direct = (await pingOnce(w)).some((p) => p.direct);
    say(direct ? `direct path through both NATs ${Date.now() - started} ms after UDP opened` : 'no direct path (the relay keeps working)');
    const ping = await lab.exec(w.a.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '2', w.b.mesh4]);
    say(`alice: ping ${w.b.mesh4} (bob's mesh address)\n${ping.stdout.trim().split('\n').map((l) => '  ' + l).join('\n')}`);
    const st = await lab.cli(['status', w.a.iface]);
    say(`alice: meshd status\n${st.stdout.trim().split('\n').map((l) => '  ' + l).join('\n')}`);
    if (!direct) throw new MeshdError('EDEMO', 'the demo did not reach a direct path');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
