// See batch.h.
#include "batch.h"

#include <string.h>

#include <atomic>

#include "aead-pool.h"
#include "aead.h"

namespace meshd {

namespace {

void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t GetLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

struct SealJob {
  const uint8_t* key;
  uint32_t receiver;
  uint64_t counter;
  int mtu;
  uint8_t* base;
  int32_t* offsets;
  int32_t* lengths;
  std::atomic<bool> failed{false};
};

void SealRange(void* ctx, int from, int to) {
  auto* s = static_cast<SealJob*>(ctx);
  for (int j = from; j < to; j++) {
    int off = s->offsets[j];
    int len = s->lengths[j];
    int padded = PaddedLength(len, s->mtu);
    uint8_t* data = s->base + off;
    if (padded > len) memset(data + len, 0, static_cast<size_t>(padded - len));
    uint8_t* msg = data - kTransportHeader;
    uint64_t c = s->counter + static_cast<uint64_t>(j);
    msg[0] = 4;
    msg[1] = msg[2] = msg[3] = 0;
    PutLe32(msg + 4, s->receiver);
    PutLe32(msg + 8, static_cast<uint32_t>(c));
    PutLe32(msg + 12, static_cast<uint32_t>(c >> 32));
    if (AeadSeal(s->key, c, data, padded, data + padded) < 0) s->failed.store(true, std::memory_order_relaxed);
    s->offsets[j] = off - kTransportHeader;
    s->lengths[j] = kTransportHeader + padded + kTag;
  }
}

struct OpenJob {
  const uint8_t* key;
  uint8_t* base;
  size_t size;
  const int32_t* offsets;
  const int32_t* lengths;
  int32_t* plain;
  double* counters;
};

void OpenRange(void* ctx, int from, int to) {
  auto* o = static_cast<OpenJob*>(ctx);
  for (int j = from; j < to; j++) {
    int off = o->offsets[j];
    int len = o->lengths[j];
    o->plain[j] = -1;
    o->counters[j] = -1;
    if (off < 0 || len < kTransportHeader + kTag || static_cast<size_t>(off) + static_cast<size_t>(len) > o->size) continue;
    uint8_t* msg = o->base + off;
    uint64_t c = GetLe64(msg + 8);
    if (c >= (1ULL << 53)) continue;
    o->counters[j] = static_cast<double>(c);
    o->plain[j] = AeadOpen(o->key, c, msg + kTransportHeader, len - kTransportHeader, msg + kTransportHeader);
  }
}

// Packets per chunk a helper thread takes (aead-pool.h): ~5 µs of work at 1,420 bytes.
constexpr int kChunk = 4;

}  // namespace

long SealBatch(const uint8_t key[32], uint32_t receiver, uint64_t counter, int mtu, uint8_t* base, size_t size, int32_t* offsets,
               int32_t* lengths, int count) {
  // Check every packet's room first: a refused batch leaves every packet as it was.
  for (int j = 0; j < count; j++) {
    int off = offsets[j];
    int len = lengths[j];
    if (off < kTransportHeader || len < 0) return -1;
    size_t end = static_cast<size_t>(off) + static_cast<size_t>(PaddedLength(len, mtu)) + kTag;
    if (end > size) return -1;
  }
  SealJob job;
  job.key = key;
  job.receiver = receiver;
  job.counter = counter;
  job.mtu = mtu;
  job.base = base;
  job.offsets = offsets;
  job.lengths = lengths;
  ParallelChunks(count, kChunk, SealRange, &job);
  if (job.failed.load(std::memory_order_relaxed)) return -1;
  long total = 0;
  for (int j = 0; j < count; j++) total += lengths[j];
  return total;
}

void OpenBatch(const uint8_t key[32], uint8_t* base, size_t size, const int32_t* offsets, const int32_t* lengths, int count,
               int32_t* plain, double* counters) {
  OpenJob job{key, base, size, offsets, lengths, plain, counters};
  ParallelChunks(count, kChunk, OpenRange, &job);
}

}  // namespace meshd
