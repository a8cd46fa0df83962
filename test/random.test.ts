// The pooled CSPRNG the daemon hands the device: right lengths, no byte served twice, any size.
import t from 'tap';
import { pooledRandom, RANDOM_BLOCK_BYTES } from '../src/crypto/random.js';

t.test('every request gets fresh bytes of the length asked, across block refills', async (t) => {
  const rng = pooledRandom();
  const seen = new Set<string>();
  let total = 0;
  let wrongLength = 0;
  for (let i = 0; i < 3000; i++) {
    const n = [4, 32, 2, 24][i % 4];
    const b = rng(n);
    if (b.length !== n) wrongLength++;
    total += n;
    if (n >= 24) {
      const hex = Buffer.from(b).toString('hex');
      if (seen.has(hex)) t.fail(`a ${n}-byte value came out twice`);
      seen.add(hex);
    }
  }
  t.equal(wrongLength, 0, 'every request got the length it asked for');
  t.ok(total > 10 * RANDOM_BLOCK_BYTES, 'the block was refilled many times');
  const ones = [...seen].join('').split('').filter((c) => c === 'f').length;
  const chars = [...seen].join('').length;
  t.ok(ones > chars / 32 && ones < chars / 8, 'hex digits look uniform (f is about 1/16 of them)');
});

t.test('requests larger than a block and of zero bytes', async (t) => {
  const rng = pooledRandom(64);
  const big = rng(1000);
  t.equal(big.length, 1000);
  t.ok(big.some((x) => x !== 0), 'a large request is filled');
  t.equal(rng(0).length, 0);
  const a = rng(40);
  const b = rng(40); // needs a refill of the 64-byte block
  t.not(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'));
});
