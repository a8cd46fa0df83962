// The TUN reader against a real TUN device in a namespace (test/helpers/tun-batches.ts), with and
// without the kernel's offloads. Sparse traffic (a datagram every 30 ms, as an idle ping) is handed
// over packet by packet right after its read, without the read that would only find the queue empty
// and that delayed every such packet; a burst waiting in the queue still arrives in whole batches,
// and nothing is lost either way. readNow() (the daemon's read right after a TUN write, for what the
// kernel answered meanwhile) hands a queued packet over before it returns.
import t from 'tap';
import { join } from 'node:path';
import { Lab, labUnavailable } from '../helpers/lab.js';
import { packageRoot } from '../../src/package-root.js';

const HELPER = join(packageRoot(), 'dist', 'test', 'helpers', 'tun-batches.js');

interface Phase {
  read: number;
  batches: number[];
  sparseWakeups: number;
  emptyReads: number;
}

const why = labUnavailable(['python3', 'sysctl']);
if (why) t.plan(0, why);
else {
  for (const mode of ['offload', 'plain'] as const) {
    t.test(`TUN reader (${mode}): sparse packets one read each, a burst in batches`, async (t) => {
      const lab = new Lab(t);
      const ns = await lab.ns('t');
      const r = await lab.exec(ns, process.execPath, [HELPER, `${lab.id}t`, mode], 30_000);
      t.equal(r.code, 0, `helper ran: ${r.stderr}`);
      const { sparse, burst, readNow, readNowEmpty, drops } = JSON.parse(r.stdout) as {
        sparse: Phase;
        burst: Phase;
        readNow: { atOnce: boolean; batches: number[] };
        readNowEmpty: { batches: number[] };
        drops: Record<string, number>;
      };

      t.equal(sparse.read, 12, 'every sparse datagram was read');
      t.same(sparse.batches, Array(12).fill(1), 'each in its own wakeup');
      t.ok(sparse.sparseWakeups >= 12, `each handed over after a single read: ${sparse.sparseWakeups}`);
      t.equal(sparse.emptyReads, 0, 'no read found the queue empty');

      t.equal(burst.read, 200, 'every datagram of the burst was read');
      t.ok(Math.max(...burst.batches) >= 32, `the burst came in batches: ${burst.batches.join(' ')}`);
      t.ok(burst.batches.length <= 20, `in a few wakeups, not one per datagram: ${burst.batches.length}`);
      t.ok(burst.emptyReads >= 1, 'the batches read until the queue was empty');
      t.ok(readNow.atOnce, 'readNow handed a queued datagram over before it returned');
      t.same(readNow.batches, [1], 'as one batch');
      t.same(readNowEmpty.batches, [], 'readNow with nothing queued hands nothing over');
      t.same(drops, {}, 'nothing dropped at the TUN');
    });
  }
}
