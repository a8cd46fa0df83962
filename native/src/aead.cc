// ChaCha20-Poly1305 with WireGuard's nonce (RFC 8439) through Node's own OpenSSL: the data path's
// packets (no associated data), the handshake's and cookie/disco boxes (with it), and HChaCha20 for
// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 §2.2), which OpenSSL does not expose.
//
// Two backends, the same bytes:
//  - "direct": OpenSSL's ChaCha20 and Poly1305 cores (ChaCha20_ctr32, Poly1305_Init/Update/Final,
//    the assembly EVP itself ends in), found in the node binary at load with dlsym. No EVP dispatch
//    per packet: that was ~320 ns of each ~1,090 ns seal of a 1,424-byte packet.
//  - "evp": one EVP context per direction, bound to the cipher once (key and nonce set per packet).
// Direct is used when all its symbols are there and a self-test agrees with EVP byte for byte.
// seal: in place, tag appended; open: into dst (may equal src), -1 when the tag does not verify
// (checked before anything is decrypted).
#include "aead.h"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

namespace meshd {

namespace {

using ChaChaFn = void (*)(unsigned char* out, const unsigned char* in, size_t len, const unsigned int key[8], const unsigned int counter[4]);
using PolyInitFn = void (*)(void* ctx, const unsigned char key[32]);
using PolyUpdateFn = void (*)(void* ctx, const unsigned char* in, size_t len);
using PolyFinalFn = void (*)(void* ctx, unsigned char mac[16]);
using PolySizeFn = size_t (*)();

constexpr size_t kPolyCtxMax = 512;

struct Direct {
  ChaChaFn chacha = nullptr;
  PolyInitFn polyInit = nullptr;
  PolyUpdateFn polyUpdate = nullptr;
  PolyFinalFn polyFinal = nullptr;
  bool ok = false;
};

struct Contexts {
  EVP_CIPHER_CTX* seal = nullptr;
  EVP_CIPHER_CTX* open = nullptr;
  bool ok = false;
};

const Contexts& Evp() {
  static Contexts c = [] {
    Contexts r;
    const EVP_CIPHER* cipher = EVP_chacha20_poly1305();
    r.seal = EVP_CIPHER_CTX_new();
    r.open = EVP_CIPHER_CTX_new();
    r.ok = r.seal && r.open && EVP_EncryptInit_ex(r.seal, cipher, nullptr, nullptr, nullptr) == 1 &&
           EVP_DecryptInit_ex(r.open, cipher, nullptr, nullptr, nullptr) == 1;
    return r;
  }();
  return c;
}

void Nonce(uint64_t counter, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

int EvpSeal(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, uint8_t* data, int len, uint8_t tag_out[16]) {
  const Contexts& c = Evp();
  if (!c.ok) return -1;
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int out = 0;
  int fin = 0;
  if (EVP_EncryptInit_ex(c.seal, nullptr, nullptr, key, nonce) != 1) return -1;
  if (adLen > 0 && EVP_EncryptUpdate(c.seal, nullptr, &out, ad, adLen) != 1) return -1;
  if (len > 0 && EVP_EncryptUpdate(c.seal, data, &out, data, len) != 1) return -1;
  if (EVP_EncryptFinal_ex(c.seal, data + out, &fin) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(c.seal, EVP_CTRL_AEAD_GET_TAG, 16, tag_out) != 1) return -1;
  return len + 16;
}

int EvpOpen(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, const uint8_t* src, int len, uint8_t* dst) {
  if (len < 16) return -1;
  const Contexts& c = Evp();
  if (!c.ok) return -1;
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int plain = len - 16;
  int out = 0;
  int fin = 0;
  uint8_t tag[16];
  memcpy(tag, src + plain, 16);
  if (EVP_DecryptInit_ex(c.open, nullptr, nullptr, key, nonce) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(c.open, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1) return -1;
  if (adLen > 0 && EVP_DecryptUpdate(c.open, nullptr, &out, ad, adLen) != 1) return -1;
  if (plain > 0 && EVP_DecryptUpdate(c.open, dst, &out, src, plain) != 1) return -1;
  if (EVP_DecryptFinal_ex(c.open, dst + out, &fin) != 1) return -1;
  return plain;
}

const uint8_t kZeros[64] = {0};

// The Poly1305 one-time key is the first 32 bytes of keystream block 0; data uses blocks 1...
struct Stream {
  unsigned int key[8];
  unsigned int ctr[4];
};

void StreamInit(Stream* s, const uint8_t key[32], uint64_t counter) {
  memcpy(s->key, key, 32);  // the cores take the key as little-endian words: x86-64 and arm64 both are
  s->ctr[0] = 0;
  s->ctr[1] = 0;
  s->ctr[2] = static_cast<unsigned int>(counter);
  s->ctr[3] = static_cast<unsigned int>(counter >> 32);
}

// RFC 8439 §2.8: Poly1305 over ad || pad16 || ciphertext || pad16 || len(ad) || len(ciphertext).
void Mac(const Direct& d, const Stream& s, const uint8_t* ad, size_t adLen, const uint8_t* ct, size_t len, uint8_t tag[16]) {
  alignas(64) unsigned char ctx[kPolyCtxMax];
  uint8_t polyKey[64];
  d.chacha(polyKey, kZeros, 32, s.key, s.ctr);
  d.polyInit(ctx, polyKey);
  if (adLen > 0) d.polyUpdate(ctx, ad, adLen);
  if (adLen % 16 != 0) d.polyUpdate(ctx, kZeros, 16 - adLen % 16);
  if (len > 0) d.polyUpdate(ctx, ct, len);
  if (len % 16 != 0) d.polyUpdate(ctx, kZeros, 16 - len % 16);
  uint8_t lengths[16];  // both little-endian
  for (int i = 0; i < 8; i++) {
    lengths[i] = static_cast<uint8_t>(static_cast<uint64_t>(adLen) >> (8 * i));
    lengths[8 + i] = static_cast<uint8_t>(static_cast<uint64_t>(len) >> (8 * i));
  }
  d.polyUpdate(ctx, lengths, 16);
  d.polyFinal(ctx, tag);
  OPENSSL_cleanse(polyKey, 32);
  OPENSSL_cleanse(ctx, sizeof(ctx));
}

int DirectSeal(const Direct& d, const uint8_t key[32], uint64_t counter, const uint8_t* ad, size_t adLen, uint8_t* data, int len,
               uint8_t tag_out[16]) {
  Stream s;
  StreamInit(&s, key, counter);
  if (len > 0) {
    s.ctr[0] = 1;
    d.chacha(data, data, static_cast<size_t>(len), s.key, s.ctr);
    s.ctr[0] = 0;
  }
  Mac(d, s, ad, adLen, data, static_cast<size_t>(len), tag_out);
  OPENSSL_cleanse(s.key, sizeof(s.key));
  return len + 16;
}

int DirectOpen(const Direct& d, const uint8_t key[32], uint64_t counter, const uint8_t* ad, size_t adLen, const uint8_t* src, int len,
               uint8_t* dst) {
  if (len < 16) return -1;
  size_t plain = static_cast<size_t>(len) - 16;
  Stream s;
  StreamInit(&s, key, counter);
  uint8_t tag[16];
  Mac(d, s, ad, adLen, src, plain, tag);
  int bad = CRYPTO_memcmp(tag, src + plain, 16);
  if (bad == 0 && plain > 0) {
    s.ctr[0] = 1;
    d.chacha(dst, src, plain, s.key, s.ctr);
  }
  OPENSSL_cleanse(s.key, sizeof(s.key));
  return bad == 0 ? static_cast<int>(plain) : -1;
}

// Both backends over a few sizes (empty, partial blocks, several blocks, a counter above 2^32), with
// and without associated data: direct is used only if it produces EVP's bytes exactly and opens what
// EVP sealed.
bool SelfTest(const Direct& d) {
  const Contexts& c = Evp();
  if (!c.ok) return true;  // nothing to compare with; the cores' own tests are OpenSSL's
  uint8_t key[32];
  for (int i = 0; i < 32; i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
  uint8_t ad[40];
  for (int i = 0; i < 40; i++) ad[i] = static_cast<uint8_t>(i * 5 + 3);
  const int sizes[] = {0, 1, 15, 16, 63, 64, 65, 300, 1420};
  for (int len : sizes) {
    const int adLen = (len * 3) % 41;  // 0, 3, 4, 7, 25, 28, 31, 39, 37 bytes
    uint8_t a[1420 + 16];
    uint8_t b[1420 + 16];
    for (int i = 0; i < len; i++) a[i] = b[i] = static_cast<uint8_t>(i * 13 + len);
    uint64_t counter = 0x1'0000'0001ULL * static_cast<uint64_t>(len + 1);
    if (EvpSeal(key, counter, ad, adLen, a, len, a + len) < 0 || DirectSeal(d, key, counter, ad, adLen, b, len, b + len) < 0) return false;
    if (memcmp(a, b, static_cast<size_t>(len) + 16) != 0) return false;
    uint8_t p[1420];
    if (DirectOpen(d, key, counter, ad, adLen, a, len + 16, p) != len) return false;
    for (int i = 0; i < len; i++)
      if (p[i] != static_cast<uint8_t>(i * 13 + len)) return false;
    if (adLen > 0 && DirectOpen(d, key, counter, ad, adLen - 1, a, len + 16, p) != -1) return false;
    a[len] ^= 1;
    if (DirectOpen(d, key, counter, ad, adLen, a, len + 16, p) != -1) return false;
  }
  return true;
}

const Direct& Cores() {
  static Direct d = [] {
    Direct r;
    const char* forced = getenv("MESHD_NATIVE_AEAD");  // "evp": the EVP backend, for comparison
    if (forced && strcmp(forced, "evp") == 0) return r;
    r.chacha = reinterpret_cast<ChaChaFn>(dlsym(RTLD_DEFAULT, "ChaCha20_ctr32"));
    r.polyInit = reinterpret_cast<PolyInitFn>(dlsym(RTLD_DEFAULT, "Poly1305_Init"));
    r.polyUpdate = reinterpret_cast<PolyUpdateFn>(dlsym(RTLD_DEFAULT, "Poly1305_Update"));
    r.polyFinal = reinterpret_cast<PolyFinalFn>(dlsym(RTLD_DEFAULT, "Poly1305_Final"));
    auto size = reinterpret_cast<PolySizeFn>(dlsym(RTLD_DEFAULT, "Poly1305_ctx_size"));
    r.ok = r.chacha && r.polyInit && r.polyUpdate && r.polyFinal && size && size() <= kPolyCtxMax;
    if (r.ok) r.ok = SelfTest(r);
    return r;
  }();
  return d;
}

}  // namespace

const char* AeadBackend() {
  if (Cores().ok) return "direct";
  return Evp().ok ? "evp" : "none";
}

int AeadSeal(const uint8_t key[32], uint64_t counter, uint8_t* data, int len, uint8_t tag_out[16]) {
  return AeadSealAd(key, counter, nullptr, 0, data, len, tag_out);
}

int AeadOpen(const uint8_t key[32], uint64_t counter, const uint8_t* src, int len, uint8_t* dst) {
  return AeadOpenAd(key, counter, nullptr, 0, src, len, dst);
}

int AeadSealAd(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, uint8_t* data, int len, uint8_t tag_out[16]) {
  const Direct& d = Cores();
  if (d.ok) return DirectSeal(d, key, counter, ad, static_cast<size_t>(adLen), data, len, tag_out);
  return EvpSeal(key, counter, ad, adLen, data, len, tag_out);
}

int AeadOpenAd(const uint8_t key[32], uint64_t counter, const uint8_t* ad, int adLen, const uint8_t* src, int len, uint8_t* dst) {
  const Direct& d = Cores();
  if (d.ok) return DirectOpen(d, key, counter, ad, static_cast<size_t>(adLen), src, len, dst);
  return EvpOpen(key, counter, ad, adLen, src, len, dst);
}

namespace {

inline uint32_t Rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }
inline void QuarterRound(uint32_t* x, int a, int b, int c, int d) {
  x[a] += x[b];
  x[d] = Rotl(x[d] ^ x[a], 16);
  x[c] += x[d];
  x[b] = Rotl(x[b] ^ x[c], 12);
  x[a] += x[b];
  x[d] = Rotl(x[d] ^ x[a], 8);
  x[c] += x[d];
  x[b] = Rotl(x[b] ^ x[c], 7);
}
inline uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

}  // namespace

void HChaCha20(uint8_t out[32], const uint8_t key[32], const uint8_t nonce[16]) {
  uint32_t x[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"
  for (int i = 0; i < 8; i++) x[4 + i] = Le32(key + 4 * i);
  for (int i = 0; i < 4; i++) x[12 + i] = Le32(nonce + 4 * i);
  for (int i = 0; i < 10; i++) {
    QuarterRound(x, 0, 4, 8, 12);
    QuarterRound(x, 1, 5, 9, 13);
    QuarterRound(x, 2, 6, 10, 14);
    QuarterRound(x, 3, 7, 11, 15);
    QuarterRound(x, 0, 5, 10, 15);
    QuarterRound(x, 1, 6, 11, 12);
    QuarterRound(x, 2, 7, 8, 13);
    QuarterRound(x, 3, 4, 9, 14);
  }
  const int words[8] = {0, 1, 2, 3, 12, 13, 14, 15};  // no feed-forward: the first and last rows
  for (int i = 0; i < 8; i++)
    for (int b = 0; b < 4; b++) out[4 * i + b] = static_cast<uint8_t>(x[words[i]] >> (8 * b));
  OPENSSL_cleanse(x, sizeof(x));
}

}  // namespace meshd
