// ChaCha20-Poly1305 with WireGuard's nonce through Node's own OpenSSL (EVP).
// One context per direction, each bound to the cipher once: per packet only the key and nonce are
// set, so OpenSSL 3 does not look the algorithm up in its provider store on every call.
// seal: in place, tag appended; open: into dst (may equal src), -1 when the tag does not verify.
#include "aead.h"

#include <openssl/evp.h>
#include <string.h>

namespace meshd {

namespace {

struct Contexts {
  EVP_CIPHER_CTX* seal = nullptr;
  EVP_CIPHER_CTX* open = nullptr;
  bool ok = false;
};

const Contexts& Ctx() {
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

}  // namespace

int AeadSeal(const uint8_t key[32], uint64_t counter, uint8_t* data, int len, uint8_t tag_out[16]) {
  const Contexts& c = Ctx();
  if (!c.ok) return -1;
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int out = 0;
  int fin = 0;
  if (EVP_EncryptInit_ex(c.seal, nullptr, nullptr, key, nonce) != 1) return -1;
  if (len > 0 && EVP_EncryptUpdate(c.seal, data, &out, data, len) != 1) return -1;
  if (EVP_EncryptFinal_ex(c.seal, data + out, &fin) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(c.seal, EVP_CTRL_AEAD_GET_TAG, 16, tag_out) != 1) return -1;
  return len + 16;
}

int AeadOpen(const uint8_t key[32], uint64_t counter, const uint8_t* src, int len, uint8_t* dst) {
  if (len < 16) return -1;
  const Contexts& c = Ctx();
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
  if (plain > 0 && EVP_DecryptUpdate(c.open, dst, &out, src, plain) != 1) return -1;
  if (EVP_DecryptFinal_ex(c.open, dst + out, &fin) != 1) return -1;
  return plain;
}

}  // namespace meshd
