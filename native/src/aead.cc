// ChaCha20-Poly1305 with WireGuard's nonce through Node's own OpenSSL (EVP), one reused context.
// seal: in place, tag appended; open: into a separate buffer, -1 when the tag does not verify.
#include "aead.h"

#include <openssl/evp.h>
#include <string.h>

namespace meshd {

namespace {

EVP_CIPHER_CTX* Ctx() {
  static EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  return ctx;
}

void Nonce(uint64_t counter, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

}  // namespace

int AeadSeal(const uint8_t key[32], uint64_t counter, uint8_t* data, int len, uint8_t tag_out[16]) {
  EVP_CIPHER_CTX* ctx = Ctx();
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int out = 0;
  int fin = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) != 1) return -1;
  if (len > 0 && EVP_EncryptUpdate(ctx, data, &out, data, len) != 1) return -1;
  if (EVP_EncryptFinal_ex(ctx, data + out, &fin) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag_out) != 1) return -1;
  return len + 16;
}

int AeadOpen(const uint8_t key[32], uint64_t counter, const uint8_t* src, int len, uint8_t* dst) {
  if (len < 16) return -1;
  EVP_CIPHER_CTX* ctx = Ctx();
  uint8_t nonce[12];
  Nonce(counter, nonce);
  int plain = len - 16;
  int out = 0;
  int fin = 0;
  uint8_t tag[16];
  memcpy(tag, src + plain, 16);
  if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), nullptr, key, nonce) != 1) return -1;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1) return -1;
  if (plain > 0 && EVP_DecryptUpdate(ctx, dst, &out, src, plain) != 1) return -1;
  if (EVP_DecryptFinal_ex(ctx, dst + out, &fin) != 1) return -1;
  return plain;
}

}  // namespace meshd
