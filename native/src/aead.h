// Data-plane AEAD over Node's bundled OpenSSL.
#pragma once
#include <stdint.h>

namespace meshd {

// "direct" (OpenSSL's ChaCha20/Poly1305 cores), "evp", or "none".
const char* AeadBackend();

// Seals data[0, len) in place and writes the 16-byte tag to tag_out; returns len + 16 or -1.
int AeadSeal(const uint8_t key[32], uint64_t counter, uint8_t* data, int len, uint8_t tag_out[16]);
// Opens src[0, len) (ciphertext + tag) into dst; returns the plaintext length or -1.
int AeadOpen(const uint8_t key[32], uint64_t counter, const uint8_t* src, int len, uint8_t* dst);

}  // namespace meshd
