// The daemon's V8 tuning (src/daemon/v8-tuning.ts), as V8 itself reports it (natives syntax, in a
// child process): once applied, a function compiled afterwards runs its first call in Sparkplug's
// baseline code, not the interpreter; MESHD_V8_SPARKPLUG=off leaves it interpreted.
import t from 'tap';
import { spawnSync } from 'node:child_process';

const V8_BASELINE = 1 << 15;
const V8_INTERPRETED = 1 << 7;

function statusAfterTuning(env: Record<string, string>): { before: number; after: number } {
  const mod = new URL('../src/daemon/v8-tuning.js', import.meta.url).href;
  const code = `
    const { quickerTierUp } = await import(${JSON.stringify(mod)});
    const early = new Function('a', 'return a + 1');
    early(1);
    quickerTierUp();
    const late = new Function('a', 'return a + 2');
    late(1);
    console.log(JSON.stringify({ before: %GetOptimizationStatus(early), after: %GetOptimizationStatus(late) }));`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, MESHD_V8_SPARKPLUG: '', MESHD_V8_TIER_UP: '', ...env } });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { before: number; after: number };
}

t.test('functions compiled once the tuning is on start in baseline code', async (t) => {
  const s = statusAfterTuning({});
  t.ok(s.before & V8_INTERPRETED, `before it, a new function's first call is interpreted (status ${s.before.toString(2)})`);
  t.ok(s.after & V8_BASELINE, `after it, in baseline code (status ${s.after.toString(2)})`);
});

t.test('MESHD_V8_SPARKPLUG=off leaves them interpreted', async (t) => {
  const s = statusAfterTuning({ MESHD_V8_SPARKPLUG: 'off' });
  t.ok(s.after & V8_INTERPRETED, `status ${s.after.toString(2)}`);
  t.notOk(s.after & V8_BASELINE);
});
