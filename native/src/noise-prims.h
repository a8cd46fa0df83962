// The handshake's primitives (whitepaper §5.4) without node:crypto's per-call object costs:
// BLAKE2s (RFC 7693: HASH, keyed MAC, HMAC, the KDF chain) written here, and X25519 from the
// node binary's own OpenSSL (ossl_x25519, found with dlsym; absent: the caller falls back).
// Pure functions of their inputs; the handshake itself stays in TypeScript (src/noise/).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace meshd {

struct Span {
  const uint8_t* p;
  size_t n;
};

// BLAKE2s over the concatenation of parts, `outLen` (1..32) bytes; keyed when keyLen > 0 (<= 32).
void Blake2s(uint8_t* out, size_t outLen, const uint8_t* key, size_t keyLen, const Span* parts, int count);
// HMAC-BLAKE2s (32-byte output) over the concatenation of parts; key at most 64 bytes.
void HmacBlake2s(uint8_t out[32], const uint8_t* key, size_t keyLen, const Span* parts, int count);
// KDF_n(key, input) for n = 1..3: out holds n * 32 bytes (T1, T2, T3).
void Kdf(int n, const uint8_t key[32], const uint8_t* input, size_t inputLen, uint8_t* out);

// X25519 through OpenSSL's core, when this node exports it. X25519Available() says whether it does.
bool X25519Available();
// DH: returns false when the result is all zeros (low-order point).
bool X25519(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]);
void X25519Public(uint8_t out[32], const uint8_t priv[32]);

}  // namespace meshd
