// UDP segmentation offload (USO) on the TUN device, against the kernel itself
// (test/helpers/tun-uso.ts in a namespace). Reading: a socket's UDP_SEGMENT send reaches the device
// as one superpacket, and the reader hands over the datagrams it stands for, each with its own
// lengths, IPv4 ID and right checksums, the bytes in order. Writing: a run of one flow's datagrams
// becomes one write, which the kernel splits back into the same datagrams for the receiving
// socket; another flow's datagram is not merged into it, and a datagram with a wrong checksum is
// not merged either, so the kernel still drops it.
import t from 'tap';
import { release } from 'node:os';
import { join } from 'node:path';
import { Lab, labUnavailable } from '../helpers/lab.js';
import { packageRoot } from '../../src/package-root.js';

const HELPER = join(packageRoot(), 'dist', 'test', 'helpers', 'tun-uso.js');
const [major, minor] = release().split('.').map(Number);
const kernelHasUso = major > 6 || (major === 6 && minor >= 2);

interface Seen {
  len: number;
  ipOk: boolean;
  udpOk: boolean;
  id: number;
}
interface Read {
  datagrams: Seen[];
  batches: number[];
  intact: boolean;
}
interface Write {
  failed: number;
  writes: number;
  flow: { len: number; fill: number }[];
  other: { len: number; fill: number }[];
}

const why = labUnavailable(['python3']) ?? (kernelHasUso ? null : `kernel ${release()} has no TUN USO (Linux 6.2+)`);
if (why) t.plan(0, why);
else {
  t.test('USO through a real TUN: UDP_SEGMENT sends split on reading, a flow merged on writing', async (t) => {
    const lab = new Lab(t);
    const ns = await lab.ns('u');
    const r = await lab.exec(ns, process.execPath, [HELPER, `${lab.id}u`], 30_000);
    t.equal(r.code, 0, `helper ran: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { uso: boolean; read: Record<'v4' | 'v6', Read>; write: Record<'v4' | 'v6', Write> };
    t.equal(out.uso, true, 'the kernel took TUN_F_USO4 and TUN_F_USO6');

    for (const fam of ['v4', 'v6'] as const) {
      const rd = out.read[fam];
      t.same(
        rd.datagrams.map((d) => d.len),
        [...Array(9).fill(1000), 500],
        `${fam}: 9,500 bytes sent with UDP_SEGMENT 1,000 arrive as ten datagrams, the last 500 bytes`,
      );
      t.ok(
        rd.datagrams.every((d) => d.ipOk && d.udpOk),
        `${fam}: every datagram's IP and UDP checksums are right`,
      );
      t.ok(rd.intact, `${fam}: their payloads, in order, are the bytes sent`);
      t.same(rd.batches, [10], `${fam}: all ten from one read of the device, in one batch (the kernel did not split them first)`);
      if (fam === 'v4') {
        const ids = rd.datagrams.map((d) => d.id);
        t.same(
          ids,
          ids.map((_, i) => (ids[0] + i) & 0xffff),
          'v4: IP IDs count up from the superpacket’s, as the kernel’s own segmentation does',
        );
      }

      const wr = out.write[fam];
      t.equal(wr.failed, 0, `${fam}: no write failed`);
      t.same(
        wr.flow,
        Array.from({ length: 8 }, (_, i) => ({ len: i === 7 ? 300 : 1200, fill: i + 1 })),
        `${fam}: the flow's eight datagrams reach its socket, whole and in order; the one with a wrong checksum does not`,
      );
      t.same(wr.other, [{ len: 500, fill: 0xaa }], `${fam}: the other flow's datagram reaches its own socket`);
      t.equal(wr.writes, 3, `${fam}: ten datagrams in three writes: the flow's eight merged, the other flow's, the bad one`);
    }
  });
}
