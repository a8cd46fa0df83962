// ChaCha20-Poly1305 over Node's bundled OpenSSL, and HChaCha20 for XChaCha20-Poly1305.
#pragma once
#include <stdint.h>

namespace meshd {

// "direct" (OpenSSL's ChaCha20/Poly1305 cores), "evp", or "none".
const char* AeadBackend();

// Seals data[0, len) in place and writes the 16-byte tag to tag_out; returns len + 16 or -1.
int AeadSeal(const uint8_t key[32], uint64_t counter, uint8_t* data, int len, uint8_t tag_out[16]);
// Opens src[0, len) (ciphertext + tag) into dst; returns the plaintext length or -1.
int AeadOpen(const uint8_t key[32], uint64_t counter, const uint8_t* src, int len, uint8_t* dst);
// The same with associated data ad[0, adLen) (the handshake's hash, a cookie's MAC1, a disco sender).
int AeadSealAd(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, uint8_t* data, int len, uint8_t tag_out[16]);
int AeadOpenAd(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, const uint8_t* src, int len, uint8_t* dst);
// HChaCha20(key, nonce[0, 16)): XChaCha20's subkey (draft-irtf-cfrg-xchacha-03 §2.2).
void HChaCha20(uint8_t out[32], const uint8_t key[32], const uint8_t nonce[16]);

}  // namespace meshd
