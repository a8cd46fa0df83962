// See aead-pool.h.
//
// Each helper has one slot whose state is the whole protocol between it and the caller:
//   idle → posted (caller: a batch is there) → started (helper took it) → done (helper finished)
//   → idle (caller collected it); posted → idle (caller finished every chunk before the helper
//   came: cancelled); idle → sleeping (helper, after spinning kSpinNs) → posted (caller, which then
//   wakes the futex) ; any → exit (SetAeadThreads stopping it).
// The batch itself (function, context, chunk counter) lives in one static Job the caller fills in
// before posting; a helper reads it only after it moved its slot posted → started, and the caller
// returns only after every slot is idle or done again, so no helper touches a finished batch.
#include "aead-pool.h"

#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "aead.h"

namespace meshd {

namespace {

enum : int { kIdle, kSleeping, kPosted, kStarted, kDone, kExit };

// How long a helper keeps looking for the next batch before it sleeps.
constexpr long kSpinNs = 50'000;

struct alignas(64) Slot {
  std::atomic<int> state{kIdle};
};

struct Job {
  void (*fn)(void*, int, int) = nullptr;
  void* ctx = nullptr;
  int count = 0;
  int chunk = 1;
  int chunks = 0;
  alignas(64) std::atomic<int> next{0};
};

Job g_job;
Slot g_slots[kMaxAeadHelpers];
// Never destroyed: a joinable std::thread destroyed at process exit would terminate the process.
std::thread* g_threads[kMaxAeadHelpers];
int g_helpers = 0;

inline void Pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

long NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000L + ts.tv_nsec;
}

void FutexWait(std::atomic<int>* word, int expected) {
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void FutexWake(std::atomic<int>* word) {
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

void RunChunks() {
  Job& j = g_job;
  for (int c = j.next.fetch_add(1, std::memory_order_relaxed); c < j.chunks; c = j.next.fetch_add(1, std::memory_order_relaxed)) {
    int from = c * j.chunk;
    j.fn(j.ctx, from, std::min(j.count, from + j.chunk));
  }
}

void Helper(Slot* s) {
  long lastWork = NowNs();
  for (int spins = 0;; spins++) {
    int st = s->state.load(std::memory_order_acquire);
    if (st == kExit) return;
    if (st == kPosted) {
      if (s->state.compare_exchange_strong(st, kStarted, std::memory_order_acq_rel)) {
        RunChunks();
        s->state.store(kDone, std::memory_order_release);
        lastWork = NowNs();
      }
      continue;
    }
    if (st == kSleeping) {
      FutexWait(&s->state, kSleeping);
      lastWork = NowNs();
      continue;
    }
    if (st == kIdle && (spins & 63) == 0 && NowNs() - lastWork > kSpinNs) {
      s->state.compare_exchange_strong(st, kSleeping, std::memory_order_acq_rel);
      continue;
    }
    Pause();
  }
}

}  // namespace

int SetAeadThreads(int n) {
  if (n < 1) n = 1;
  if (n > kMaxAeadHelpers + 1) n = kMaxAeadHelpers + 1;
  if (n > 1 && strcmp(AeadBackend(), "direct") != 0) n = 1;  // only the direct cores are safe to share
  int want = n - 1;
  while (g_helpers > want) {
    g_helpers--;
    Slot& s = g_slots[g_helpers];
    if (s.state.exchange(kExit, std::memory_order_acq_rel) == kSleeping) FutexWake(&s.state);
    g_threads[g_helpers]->join();
    delete g_threads[g_helpers];
    g_threads[g_helpers] = nullptr;
    s.state.store(kIdle, std::memory_order_relaxed);
  }
  while (g_helpers < want) {
    g_slots[g_helpers].state.store(kIdle, std::memory_order_relaxed);
    g_threads[g_helpers] = new std::thread(Helper, &g_slots[g_helpers]);
    g_helpers++;
  }
  return g_helpers + 1;
}

void ParallelChunks(int count, int chunk, void (*fn)(void*, int, int), void* ctx) {
  if (chunk < 1) chunk = 1;
  int chunks = (count + chunk - 1) / chunk;
  int helpers = std::min(g_helpers, chunks - 1);
  if (helpers <= 0) {
    if (count > 0) fn(ctx, 0, count);
    return;
  }
  g_job.fn = fn;
  g_job.ctx = ctx;
  g_job.count = count;
  g_job.chunk = chunk;
  g_job.chunks = chunks;
  g_job.next.store(0, std::memory_order_relaxed);
  for (int i = 0; i < helpers; i++) {
    if (g_slots[i].state.exchange(kPosted, std::memory_order_acq_rel) == kSleeping) FutexWake(&g_slots[i].state);
  }
  RunChunks();
  for (int i = 0; i < helpers; i++) {
    Slot& s = g_slots[i];
    int st = kPosted;
    if (s.state.compare_exchange_strong(st, kIdle, std::memory_order_acq_rel)) continue;  // never came
    // It took the batch: at most the chunk it is on is left (others were taken by then).
    for (int spins = 0; s.state.load(std::memory_order_acquire) != kDone; spins++) {
      if (spins < 4096) Pause();
      else std::this_thread::yield();
    }
    s.state.store(kIdle, std::memory_order_release);
  }
}

}  // namespace meshd
