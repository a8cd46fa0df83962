// The replay window: accepts each counter once, in any order within the window, rejects old ones.
import t from 'tap';
import { REPLAY_WINDOW_SIZE, ReplayFilter } from '../src/noise/replay.js';

const LIMIT = Number.MAX_SAFE_INTEGER;

t.test('in-order, duplicate, reordered and too-old counters', async (t) => {
  const f = new ReplayFilter();
  for (let i = 0; i < 100; i++) t.ok(f.validate(i, LIMIT) || t.fail(`counter ${i}`) === undefined);
  t.notOk(f.validate(50, LIMIT), 'duplicate rejected');
  t.ok(f.validate(200, LIMIT), 'jump ahead');
  t.ok(f.validate(150, LIMIT), 'late but inside the window');
  t.notOk(f.validate(150, LIMIT), 'and only once');
  t.ok(f.validate(200 + REPLAY_WINDOW_SIZE, LIMIT));
  t.notOk(f.validate(199, LIMIT), 'older than the window');
  t.ok(f.validate(201, LIMIT), 'just inside the window');
  t.notOk(f.validate(LIMIT, LIMIT), 'at the limit');
});

t.test('matches a set-based reference on random sequences', async (t) => {
  const f = new ReplayFilter();
  const seen = new Set<number>();
  let max = 0;
  let mismatches = 0;
  for (let i = 0; i < 50_000; i++) {
    const c = Math.max(0, max + Math.floor(Math.random() * 400) - 300 + (Math.random() < 0.01 ? 20_000 : 0));
    const expected = !seen.has(c) && !(max - c > REPLAY_WINDOW_SIZE);
    const got = f.validate(c, LIMIT);
    if (got !== expected) mismatches++;
    if (got) {
      seen.add(c);
      max = Math.max(max, c);
    }
  }
  t.equal(mismatches, 0);
});
