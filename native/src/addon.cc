// N-API surface. Hot-path errors are -errno return values, never exceptions (EAGAIN is not exceptional).
//   TUN: tunOpen, tunWriteBatch, TunReader     UDP: udpOpen, udpSetMark, udpSetPmtuProbe, UdpReader
//   AEAD: aeadSeal, aeadOpen, sealBatch, openBatch, aeadBackend, setAeadThreads   closeFd
//   the same batches with their arrays bound once (bound.h): aeadBindSeal, sealBound, aeadBindOpen,
//     openBound, udpSenderCreate, udpSenderExternal, udpSenderSend, udpSenderClose
//   network checks: netwatchOpen, netwatchDrain
//   boxes with associated data (handshake, cookies, disco, relay login): aeadSealAd, aeadOpenAd
//   handshake primitives: blake2s, hmacBlake2s, kdf, x25519, x25519Public, x25519Available
//   the daemon's heap: reduceHeap
#include <errno.h>
#include <napi.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <v8.h>

#include "aead-pool.h"
#include "aead.h"
#include "batch.h"
#include "bound.h"
#include "netwatch.h"
#include "noise-prims.h"
#include "readers.h"
#include "tun.h"
#include "udp.h"
#include "vnet.h"

namespace {

uint32_t U32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Uint32Value(); }
int32_t I32(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int32Value(); }
uint64_t Counter(const Napi::CallbackInfo& info, size_t lo) {
  return static_cast<uint64_t>(U32(info, lo)) | (static_cast<uint64_t>(U32(info, lo + 1)) << 32);
}

// tunOpen(name, offload) -> { fd, name, error, offload }
Napi::Value TunOpenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "tunOpen(name: string, offload: boolean)").ThrowAsJavaScriptException();
    return env.Null();
  }
  std::string actual;
  bool offloaded = false;
  bool uso = false;
  int fd = meshd::TunOpen(info[0].As<Napi::String>().Utf8Value(), info.Length() > 1 && info[1].ToBoolean().Value(), &actual, &offloaded, &uso);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, actual));
  out.Set("error", Napi::String::New(env, fd < 0 ? strerror(-fd) : ""));
  out.Set("offload", Napi::Boolean::New(env, offloaded));
  out.Set("uso", Napi::Boolean::New(env, uso));
  return out;
}

// tunWriteBatch(fd, packets: Uint8Array[], count, offload, uso?) -> { writes, errors } packed as
// writes * 65536 + errors. With offload, TCP segments of one flow are merged (GRO) and every packet
// gets a virtio-net header; with uso too (the TUN took USO), datagrams of one UDP flow as well.
Napi::Value TunWriteBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = I32(info, 0);
  auto packets = info[1].As<Napi::Array>();
  uint32_t count = U32(info, 2);
  bool offload = info[3].ToBoolean().Value();
  bool uso = info.Length() > 4 && info[4].ToBoolean().Value();
  int errors = 0;
  int writes = 0;
  meshd::TunCoalescer co(fd, uso);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value v = packets[i];
    if (!v.IsTypedArray()) continue;
    auto p = v.As<Napi::Uint8Array>();
    if (offload) {
      co.Add(p.Data(), static_cast<int>(p.ByteLength()));
    } else {
      writes++;
      if (write(fd, p.Data(), p.ByteLength()) < 0) errors++;
    }
  }
  if (offload) {
    errors += co.Flush();
    writes += co.writes();
  }
  return Napi::Number::New(env, static_cast<double>(writes) * 65536 + errors);
}

// aeadSeal(key, counterLo, counterHi, buf, offset, length) -> length + 16, or -1.
// Seals buf[offset, offset+length) in place; the tag goes right after it.
Napi::Value AeadSealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  auto buf = info[3].As<Napi::Uint8Array>();
  size_t off = U32(info, 4);
  size_t len = U32(info, 5);
  if (key.ByteLength() != 32 || off + len + 16 > buf.ByteLength()) return Napi::Number::New(env, -1);
  uint8_t* p = buf.Data() + off;
  return Napi::Number::New(env, meshd::AeadSeal(key.Data(), Counter(info, 1), p, static_cast<int>(len), p + len));
}

// aeadOpen(key, counterLo, counterHi, src, srcOffset, length, dst, dstOffset) -> plaintext length, or -1.
Napi::Value AeadOpenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  auto src = info[3].As<Napi::Uint8Array>();
  size_t soff = U32(info, 4);
  size_t len = U32(info, 5);
  auto dst = info[6].As<Napi::Uint8Array>();
  size_t doff = U32(info, 7);
  if (key.ByteLength() != 32 || len < 16 || soff + len > src.ByteLength() || doff + (len - 16) > dst.ByteLength()) {
    return Napi::Number::New(env, -1);
  }
  return Napi::Number::New(env, meshd::AeadOpen(key.Data(), Counter(info, 1), src.Data() + soff, static_cast<int>(len), dst.Data() + doff));
}

// sealBatch(key, receiver, counterLo, counterHi, mtu, buf, offsets, lengths, start, count) -> bytes, or -1.
// Packets [start, start+count) of buf (offsets/lengths) become transport messages in place, with
// counters counter, counter+1...; offsets/lengths then describe the messages (batch.h).
Napi::Value SealBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  auto buf = info[5].As<Napi::Uint8Array>();
  auto offsets = info[6].As<Napi::Int32Array>();
  auto lengths = info[7].As<Napi::Int32Array>();
  int32_t start = I32(info, 8);
  int32_t count = I32(info, 9);
  if (key.ByteLength() != 32 || start < 0 || count < 0 || static_cast<size_t>(start) + count > offsets.ElementLength() ||
      static_cast<size_t>(start) + count > lengths.ElementLength()) {
    return Napi::Number::New(env, -1);
  }
  long r = meshd::SealBatch(key.Data(), U32(info, 1), Counter(info, 2), I32(info, 4), buf.Data(), buf.ByteLength(), offsets.Data() + start,
                            lengths.Data() + start, count);
  return Napi::Number::New(env, static_cast<double>(r));
}

// openBatch(key, buf, offsets, lengths, start, count, plain: Int32Array, counters: Float64Array)
// Opens messages [start, start+count) in place; plain[i] = plaintext length or -1, counters[i] the
// message counter (-1: above 2^53, not opened). Returns count, or -1 for bad arguments.
Napi::Value OpenBatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  auto buf = info[1].As<Napi::Uint8Array>();
  auto offsets = info[2].As<Napi::Int32Array>();
  auto lengths = info[3].As<Napi::Int32Array>();
  int32_t start = I32(info, 4);
  int32_t count = I32(info, 5);
  auto plain = info[6].As<Napi::Int32Array>();
  auto counters = info[7].As<Napi::Float64Array>();
  size_t end = static_cast<size_t>(start) + static_cast<size_t>(count);
  if (key.ByteLength() != 32 || start < 0 || count < 0 || end > offsets.ElementLength() || end > lengths.ElementLength() ||
      end > plain.ElementLength() || end > counters.ElementLength()) {
    return Napi::Number::New(env, -1);
  }
  meshd::OpenBatch(key.Data(), buf.Data(), buf.ByteLength(), offsets.Data() + start, lengths.Data() + start, count, plain.Data() + start,
                   counters.Data() + start);
  return Napi::Number::New(env, count);
}

// The key and 12-byte nonce a box uses: an 8-byte nonce is WireGuard's (4 zero bytes and the 8 given,
// a little-endian counter); a 24-byte one is XChaCha20's (HChaCha20 subkey from its first 16 bytes,
// then 4 zero bytes and its last 8). Returns false for other lengths.
bool BoxKey(const Napi::CallbackInfo& info, uint8_t key[32], uint64_t* counter) {
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsTypedArray() || !info[4].IsTypedArray()) {
    return false;
  }
  auto k = info[0].As<Napi::Uint8Array>();
  auto nonce = info[1].As<Napi::Uint8Array>();
  if (k.ByteLength() != 32) return false;
  const uint8_t* n = nonce.Data();
  const uint8_t* tail;
  if (nonce.ByteLength() == 8) {
    memcpy(key, k.Data(), 32);
    tail = n;
  } else if (nonce.ByteLength() == 24) {
    meshd::HChaCha20(key, k.Data(), n);
    tail = n + 16;
  } else {
    return false;
  }
  *counter = 0;
  for (int i = 0; i < 8; i++) *counter |= static_cast<uint64_t>(tail[i]) << (8 * i);
  return true;
}

// aeadSealAd(key, nonce: 8 or 24 bytes, ad, src, dst) -> src.length + 16, or -1. dst gets the
// ciphertext and tag (dst may be src's buffer only if it is src itself, with room for the tag).
// aeadOpenAd(key, nonce, ad, src, dst) -> plaintext length (src.length - 16), or -1 when the tag does
// not verify or the lengths are wrong (dst may have been written then: discard it).
Napi::Value BoxJs(const Napi::CallbackInfo& info, bool seal) {
  Napi::Env env = info.Env();
  uint8_t key[32];
  uint64_t counter;
  if (!BoxKey(info, key, &counter)) return Napi::Number::New(env, -1);
  auto ad = info[2].As<Napi::Uint8Array>();
  auto src = info[3].As<Napi::Uint8Array>();
  auto dst = info[4].As<Napi::Uint8Array>();
  size_t len = src.ByteLength();
  int adLen = static_cast<int>(ad.ByteLength());
  int r = -1;
  if (len > 0x7fff0000 || ad.ByteLength() > 0x7fff0000) {
    // too large for the cores' int lengths
  } else if (seal && dst.ByteLength() >= len + 16) {
    if (dst.Data() != src.Data()) memmove(dst.Data(), src.Data(), len);
    r = meshd::AeadSealAd(key, counter, ad.Data(), adLen, dst.Data(), static_cast<int>(len), dst.Data() + len);
  } else if (!seal && len >= 16 && dst.ByteLength() >= len - 16) {
    r = meshd::AeadOpenAd(key, counter, ad.Data(), adLen, src.Data(), static_cast<int>(len), dst.Data());
  }
  OPENSSL_cleanse(key, sizeof(key));
  return Napi::Number::New(env, r);
}

// The handshake primitives (noise-prims.h). Outputs are written into `out` (its length is the
// digest length for blake2s: 16 or 32). Up to three input parts, concatenated.
int Parts(const Napi::CallbackInfo& info, size_t first, meshd::Span* parts) {
  int n = 0;
  for (size_t i = first; i < info.Length() && n < 3; i++) {
    if (!info[i].IsTypedArray()) break;
    auto u = info[i].As<Napi::Uint8Array>();
    parts[n++] = {u.Data(), u.ByteLength()};
  }
  return n;
}

// blake2s(out, key | null, ...parts) -> true, or false for bad lengths
Napi::Value Blake2sJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = info[0].As<Napi::Uint8Array>();
  const uint8_t* key = nullptr;
  size_t keyLen = 0;
  if (info[1].IsTypedArray()) {
    auto k = info[1].As<Napi::Uint8Array>();
    key = k.Data();
    keyLen = k.ByteLength();
  }
  if (out.ByteLength() < 1 || out.ByteLength() > 32 || keyLen > 32) return Napi::Boolean::New(env, false);
  meshd::Span parts[3];
  int n = Parts(info, 2, parts);
  meshd::Blake2s(out.Data(), out.ByteLength(), key, keyLen, parts, n);
  return Napi::Boolean::New(env, true);
}

// hmacBlake2s(out32, key, ...parts) -> true, or false for bad lengths
Napi::Value HmacBlake2sJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = info[0].As<Napi::Uint8Array>();
  auto key = info[1].As<Napi::Uint8Array>();
  if (out.ByteLength() != 32 || key.ByteLength() > 64) return Napi::Boolean::New(env, false);
  meshd::Span parts[3];
  int n = Parts(info, 2, parts);
  meshd::HmacBlake2s(out.Data(), key.Data(), key.ByteLength(), parts, n);
  return Napi::Boolean::New(env, true);
}

// kdf(n, key32, input, out: n * 32 bytes) -> true, or false for bad lengths
Napi::Value KdfJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = I32(info, 0);
  auto key = info[1].As<Napi::Uint8Array>();
  auto input = info[2].As<Napi::Uint8Array>();
  auto out = info[3].As<Napi::Uint8Array>();
  if (n < 1 || n > 3 || key.ByteLength() != 32 || out.ByteLength() != static_cast<size_t>(32 * n)) return Napi::Boolean::New(env, false);
  meshd::Kdf(n, key.Data(), input.Data(), input.ByteLength(), out.Data());
  return Napi::Boolean::New(env, true);
}

// x25519(out32, priv32, pub32) -> 1 ok, 0 all-zero result (low-order point), -1 unavailable/bad lengths
Napi::Value X25519Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = info[0].As<Napi::Uint8Array>();
  auto priv = info[1].As<Napi::Uint8Array>();
  auto pub = info[2].As<Napi::Uint8Array>();
  if (!meshd::X25519Available() || out.ByteLength() != 32 || priv.ByteLength() != 32 || pub.ByteLength() != 32) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, meshd::X25519(out.Data(), priv.Data(), pub.Data()) ? 1 : 0);
}

// x25519Public(out32, priv32) -> true, or false when unavailable/bad lengths
Napi::Value X25519PublicJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto out = info[0].As<Napi::Uint8Array>();
  auto priv = info[1].As<Napi::Uint8Array>();
  if (!meshd::X25519Available() || out.ByteLength() != 32 || priv.ByteLength() != 32) return Napi::Boolean::New(env, false);
  meshd::X25519Public(out.Data(), priv.Data());
  return Napi::Boolean::New(env, true);
}

// udpOpen(port, bufferBytes, fwmark) -> { fd, port, dualStack, gro, error, code }
Napi::Value UdpOpenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  meshd::UdpSocketInfo s;
  int r = meshd::UdpOpen(I32(info, 0), I32(info, 1), U32(info, 2), &s);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, r < 0 ? r : s.fd));
  out.Set("port", Napi::Number::New(env, s.port));
  out.Set("dualStack", Napi::Boolean::New(env, s.dualStack));
  out.Set("gro", Napi::Boolean::New(env, s.gro));
  out.Set("error", Napi::String::New(env, r < 0 ? strerror(-r) : ""));
  out.Set("code", Napi::Number::New(env, r < 0 ? -r : 0));
  return out;
}

// udpSetMark(fd, fwmark) -> 0 or -errno
Napi::Value UdpSetMarkJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), meshd::UdpSetMark(I32(info, 0), U32(info, 1)));
}

// udpSetPmtuProbe(fd, dualStack) -> 0 or -errno
Napi::Value UdpSetPmtuProbeJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), meshd::UdpSetPmtuProbe(I32(info, 0), info[1].ToBoolean().Value()));
}

Napi::Value CloseFdJs(const Napi::CallbackInfo& info) {
  int r = close(I32(info, 0));
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// reduceHeap(now) -> undefined. A full GC that compacts the heap and gives its free pages back:
// with now, at once, on this thread (V8's "critical" memory pressure: one GC, a second one when the
// first freed much); else started as incremental marking that finishes in small steps over the next
// event-loop turns ("moderate"), as V8's memory reducer does it on its own timer. N-API has no call
// for it, so this is the one use of V8's API in the addon, built against the headers of the Node
// that runs it (node-gyp at install). When the daemon asks: src/daemon/heap-trim.ts.
Napi::Value ReduceHeapJs(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) {
    bool now = info.Length() > 0 && info[0].ToBoolean().Value();
    isolate->MemoryPressureNotification(now ? v8::MemoryPressureLevel::kCritical : v8::MemoryPressureLevel::kModerate);
    isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kNone);  // acted on already: back to normal
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New(env, TunOpenJs));
  exports.Set("tunWriteBatch", Napi::Function::New(env, TunWriteBatchJs));
  exports.Set("TunReader", meshd::DefineTunReader(env));
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpenJs));
  exports.Set("udpSetMark", Napi::Function::New(env, UdpSetMarkJs));
  exports.Set("udpSetPmtuProbe", Napi::Function::New(env, UdpSetPmtuProbeJs));
  exports.Set("UdpReader", meshd::DefineUdpReader(env));
  exports.Set("closeFd", Napi::Function::New(env, CloseFdJs));
  // netwatchOpen() -> fd or -errno; netwatchDrain(fd) -> notifications read, or -errno (netwatch.h)
  exports.Set("netwatchOpen", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), meshd::NetwatchOpen());
              }));
  exports.Set("netwatchDrain", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), meshd::NetwatchDrain(I32(info, 0)));
              }));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSealJs));
  exports.Set("aeadOpen", Napi::Function::New(env, AeadOpenJs));
  exports.Set("aeadSealAd", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return BoxJs(info, true); }));
  exports.Set("aeadOpenAd", Napi::Function::New(env, [](const Napi::CallbackInfo& info) { return BoxJs(info, false); }));
  exports.Set("sealBatch", Napi::Function::New(env, SealBatchJs));
  exports.Set("openBatch", Napi::Function::New(env, OpenBatchJs));
  exports.Set("blake2s", Napi::Function::New(env, Blake2sJs));
  exports.Set("hmacBlake2s", Napi::Function::New(env, HmacBlake2sJs));
  exports.Set("kdf", Napi::Function::New(env, KdfJs));
  exports.Set("x25519", Napi::Function::New(env, X25519Js));
  exports.Set("x25519Public", Napi::Function::New(env, X25519PublicJs));
  exports.Set("x25519Available", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Boolean::New(info.Env(), meshd::X25519Available());
  }));
  exports.Set("aeadBackend", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), meshd::AeadBackend());
  }));
  // setAeadThreads(n) -> the threads a batch's AEAD now runs on, the caller included (aead-pool.h).
  exports.Set("setAeadThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), meshd::SetAeadThreads(info[0].As<Napi::Number>().Int32Value()));
  }));
  exports.Set("reduceHeap", Napi::Function::New(env, ReduceHeapJs));
  meshd::DefineBound(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(meshd_native, Init)
