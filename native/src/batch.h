// WireGuard transport messages sealed and opened a batch at a time (one N-API call per batch, not
// per packet). Only the message layout and the AEAD live here; counters, keys, replay windows and
// every decision stay in TypeScript (src/tunnel/).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace meshd {

// Message layout (whitepaper §5.4.6): type 4, three zero bytes, receiver index (LE32), counter (LE64),
// then the padded, sealed packet and its tag.
constexpr int kTransportHeader = 16;
constexpr int kTag = 16;

// Seals packets j in [0, count): base[offsets[j], +lengths[j]) becomes one transport message in
// place, its header in the 16 bytes before the packet, its padding (to a multiple of 16, at most
// `mtu`; 0: no limit) and tag after it. Packet j uses counter `counter + j`. offsets[j] and
// lengths[j] are rewritten to the message's place and size. Returns the bytes of all messages, or
// -1 (nothing trustworthy was written) when a packet lacks its room in [0, size).
long SealBatch(const uint8_t key[32], uint32_t receiver, uint64_t counter, int mtu, uint8_t* base, size_t size, int32_t* offsets,
               int32_t* lengths, int count);

// Opens transport messages j in [0, count), base[offsets[j], +lengths[j]) (already known to carry
// the same receiver index), in place: the plaintext is at offsets[j] + 16. plain[j] is its length,
// or -1 if the message does not authenticate (nothing is decrypted then); counters[j] the message's
// counter (as a double: exact up to 2^53; larger ones are reported as -1 and not opened).
void OpenBatch(const uint8_t key[32], uint8_t* base, size_t size, const int32_t* offsets, const int32_t* lengths, int count,
               int32_t* plain, double* counters);

// The padded length of a packet of `len` bytes (wireguard-go's calculatePaddingSize): up to a
// multiple of 16, but not past `mtu` (0: no limit); segments longer than the MTU pad their remainder.
inline int PaddedLength(int len, int mtu) {
  if (len == 0) return 0;
  int last = len;
  if (mtu > 0 && last > mtu) last %= mtu;
  int padded = (last + 15) & ~15;
  if (mtu > 0) {
    int cap = mtu > last ? mtu : last;
    if (padded > cap) padded = cap;
  }
  return len - last + padded;
}

}  // namespace meshd
