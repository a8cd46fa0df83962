// See noise-prims.h.
#include "noise-prims.h"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <string.h>

namespace meshd {

namespace {

constexpr uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};
constexpr uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

inline uint32_t Rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

struct State {
  uint32_t h[8];
  uint64_t t = 0;
  uint8_t buf[64];
  size_t used = 0;
};

void Compress(State* s, const uint8_t block[64], bool last) {
  uint32_t m[16];
  uint32_t v[16];
  for (int i = 0; i < 16; i++) m[i] = Load32(block + 4 * i);
  for (int i = 0; i < 8; i++) {
    v[i] = s->h[i];
    v[i + 8] = kIv[i];
  }
  v[12] ^= static_cast<uint32_t>(s->t);
  v[13] ^= static_cast<uint32_t>(s->t >> 32);
  if (last) v[14] = ~v[14];
#define MESHD_G(a, b, c, d, x, y)  \
  v[a] = v[a] + v[b] + (x);        \
  v[d] = Rotr(v[d] ^ v[a], 16);    \
  v[c] = v[c] + v[d];              \
  v[b] = Rotr(v[b] ^ v[c], 12);    \
  v[a] = v[a] + v[b] + (y);        \
  v[d] = Rotr(v[d] ^ v[a], 8);     \
  v[c] = v[c] + v[d];              \
  v[b] = Rotr(v[b] ^ v[c], 7);
  for (int r = 0; r < 10; r++) {
    const uint8_t* z = kSigma[r];
    MESHD_G(0, 4, 8, 12, m[z[0]], m[z[1]]);
    MESHD_G(1, 5, 9, 13, m[z[2]], m[z[3]]);
    MESHD_G(2, 6, 10, 14, m[z[4]], m[z[5]]);
    MESHD_G(3, 7, 11, 15, m[z[6]], m[z[7]]);
    MESHD_G(0, 5, 10, 15, m[z[8]], m[z[9]]);
    MESHD_G(1, 6, 11, 12, m[z[10]], m[z[11]]);
    MESHD_G(2, 7, 8, 13, m[z[12]], m[z[13]]);
    MESHD_G(3, 4, 9, 14, m[z[14]], m[z[15]]);
  }
#undef MESHD_G
  for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
  OPENSSL_cleanse(m, sizeof(m));
  OPENSSL_cleanse(v, sizeof(v));
}

void Init(State* s, size_t outLen, const uint8_t* key, size_t keyLen) {
  memcpy(s->h, kIv, sizeof(kIv));
  s->h[0] ^= 0x01010000u ^ (static_cast<uint32_t>(keyLen) << 8) ^ static_cast<uint32_t>(outLen);
  s->t = 0;
  s->used = 0;
  if (keyLen > 0) {
    memset(s->buf, 0, 64);
    memcpy(s->buf, key, keyLen);
    s->used = 64;  // the key block is a full block, compressed once more input (or the end) comes
  }
}

void Update(State* s, const uint8_t* in, size_t n) {
  while (n > 0) {
    if (s->used == 64) {  // a full block is compressed only when more input follows: the last one is final
      s->t += 64;
      Compress(s, s->buf, false);
      s->used = 0;
    }
    size_t take = 64 - s->used;
    if (take > n) take = n;
    memcpy(s->buf + s->used, in, take);
    s->used += take;
    in += take;
    n -= take;
  }
}

void Final(State* s, uint8_t* out, size_t outLen) {
  s->t += s->used;
  memset(s->buf + s->used, 0, 64 - s->used);
  Compress(s, s->buf, true);
  uint8_t full[32];
  for (int i = 0; i < 8; i++)
    for (int k = 0; k < 4; k++) full[4 * i + k] = static_cast<uint8_t>(s->h[i] >> (8 * k));
  memcpy(out, full, outLen);
  OPENSSL_cleanse(full, sizeof(full));
  OPENSSL_cleanse(s, sizeof(*s));
}

using X25519Fn = int (*)(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]);
using X25519PublicFn = void (*)(uint8_t out[32], const uint8_t priv[32]);

struct Curve {
  X25519Fn dh = nullptr;
  X25519PublicFn pub = nullptr;
  bool ok = false;
};

const Curve& Cores() {
  static Curve c = [] {
    Curve r;
    r.dh = reinterpret_cast<X25519Fn>(dlsym(RTLD_DEFAULT, "ossl_x25519"));
    r.pub = reinterpret_cast<X25519PublicFn>(dlsym(RTLD_DEFAULT, "ossl_x25519_public_from_private"));
    if (!r.dh || !r.pub) return r;
    // RFC 7748 §6.1: Alice's and Bob's keys, their public values and the shared secret.
    auto hex = [](const char* h, uint8_t* out) {
      for (int i = 0; i < 32; i++) {
        auto v = [](char ch) { return ch <= '9' ? ch - '0' : ch - 'a' + 10; };
        out[i] = static_cast<uint8_t>(v(h[2 * i]) * 16 + v(h[2 * i + 1]));
      }
    };
    uint8_t a[32], b[32], apub[32], bpub[32], k[32], want[32];
    hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a);
    hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", b);
    hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", want);
    r.pub(apub, a);
    r.pub(bpub, b);
    r.ok = r.dh(k, a, bpub) == 1 && memcmp(k, want, 32) == 0 && r.dh(k, b, apub) == 1 && memcmp(k, want, 32) == 0;
    return r;
  }();
  return c;
}

}  // namespace

void Blake2s(uint8_t* out, size_t outLen, const uint8_t* key, size_t keyLen, const Span* parts, int count) {
  State s;
  Init(&s, outLen, key, keyLen);
  for (int i = 0; i < count; i++) Update(&s, parts[i].p, parts[i].n);
  Final(&s, out, outLen);
}

void HmacBlake2s(uint8_t out[32], const uint8_t* key, size_t keyLen, const Span* parts, int count) {
  uint8_t pad[64];
  uint8_t inner[32];
  memset(pad, 0x36, 64);
  for (size_t i = 0; i < keyLen; i++) pad[i] ^= key[i];
  State s;
  Init(&s, 32, nullptr, 0);
  Update(&s, pad, 64);
  for (int i = 0; i < count; i++) Update(&s, parts[i].p, parts[i].n);
  Final(&s, inner, 32);
  for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
  Init(&s, 32, nullptr, 0);
  Update(&s, pad, 64);
  Update(&s, inner, 32);
  Final(&s, out, 32);
  OPENSSL_cleanse(pad, sizeof(pad));
  OPENSSL_cleanse(inner, sizeof(inner));
}

void Kdf(int n, const uint8_t key[32], const uint8_t* input, size_t inputLen, uint8_t* out) {
  uint8_t t0[32];
  Span in{input, inputLen};
  HmacBlake2s(t0, key, 32, &in, 1);
  uint8_t counter = 1;
  Span first{&counter, 1};
  HmacBlake2s(out, t0, 32, &first, 1);
  for (int i = 1; i < n; i++) {
    counter = static_cast<uint8_t>(i + 1);
    Span parts[2] = {{out + 32 * (i - 1), 32}, {&counter, 1}};
    HmacBlake2s(out + 32 * i, t0, 32, parts, 2);
  }
  OPENSSL_cleanse(t0, sizeof(t0));
}

bool X25519Available() { return Cores().ok; }

bool X25519(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]) { return Cores().dh(out, priv, pub) == 1; }

void X25519Public(uint8_t out[32], const uint8_t priv[32]) { Cores().pub(out, priv); }

}  // namespace meshd
