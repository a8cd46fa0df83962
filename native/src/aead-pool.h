// Spreading one batch's AEAD over more than one core (MESHD_AEAD_THREADS). The calling (JavaScript)
// thread and up to kMaxAeadHelpers helper threads take chunks of the batch from one shared counter
// until none is left, so a helper that is not running at the moment (every core busy) costs the
// batch nothing: the caller does that share itself and only waits for chunks a helper has begun.
// Helpers spin briefly after a batch (at full rate the next one follows within microseconds), then
// sleep on a futex. With no helpers (the default) every batch runs on the caller, as before.
// Only the "direct" AEAD backend is used from helpers (the EVP one shares its contexts).
#pragma once

namespace meshd {

constexpr int kMaxAeadHelpers = 7;

// Threads that run a batch's AEAD, the caller included: n - 1 helpers are started (n in [1, 8]),
// or stopped and joined (n = 1). Returns the number now in effect (1 when helpers cannot run).
int SetAeadThreads(int n);

// Runs fn(ctx, from, to) over [0, count) in chunks of `chunk` items, on the caller and the helpers,
// and returns once every chunk is done. Calls come from one thread at a time (the event loop).
void ParallelChunks(int count, int chunk, void (*fn)(void* ctx, int from, int to), void* ctx);

}  // namespace meshd
