// N-API surface: tunOpen, tunWrite, tunClose and TunReader (uv_poll readiness + batched reads).
// Hot-path errors are -errno return values, never exceptions (EAGAIN is not exceptional).
#include <errno.h>
#include <napi.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aead.h"
#include "tun.h"

namespace {

Napi::Value TunOpenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "tunOpen(name: string)").ThrowAsJavaScriptException();
    return env.Null();
  }
  std::string actual;
  int fd = meshd::TunOpen(info[0].As<Napi::String>().Utf8Value(), &actual);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, actual));
  out.Set("error", Napi::String::New(env, fd < 0 ? strerror(-fd) : ""));
  return out;
}

// tunWrite(fd, buf, offset, length) -> bytes written or -errno.
Napi::Value TunWriteJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Uint8Array>();
  size_t off = info[2].As<Napi::Number>().Uint32Value();
  size_t len = info[3].As<Napi::Number>().Uint32Value();
  if (off + len > buf.ByteLength()) return Napi::Number::New(env, -EINVAL);
  ssize_t n = write(fd, buf.Data() + off, len);
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

// aeadSeal(key, counterLo, counterHi, buf, offset, length) -> length + 16, or -1.
// Seals buf[offset, offset+length) in place; the tag goes right after it.
Napi::Value AeadSealJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  uint64_t counter = static_cast<uint64_t>(info[1].As<Napi::Number>().Uint32Value()) |
                     (static_cast<uint64_t>(info[2].As<Napi::Number>().Uint32Value()) << 32);
  auto buf = info[3].As<Napi::Uint8Array>();
  size_t off = info[4].As<Napi::Number>().Uint32Value();
  size_t len = info[5].As<Napi::Number>().Uint32Value();
  if (key.ByteLength() != 32 || off + len + 16 > buf.ByteLength()) return Napi::Number::New(env, -1);
  uint8_t* p = buf.Data() + off;
  return Napi::Number::New(env, meshd::AeadSeal(key.Data(), counter, p, static_cast<int>(len), p + len));
}

// aeadOpen(key, counterLo, counterHi, src, srcOffset, length, dst, dstOffset) -> plaintext length, or -1.
Napi::Value AeadOpenJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = info[0].As<Napi::Uint8Array>();
  uint64_t counter = static_cast<uint64_t>(info[1].As<Napi::Number>().Uint32Value()) |
                     (static_cast<uint64_t>(info[2].As<Napi::Number>().Uint32Value()) << 32);
  auto src = info[3].As<Napi::Uint8Array>();
  size_t soff = info[4].As<Napi::Number>().Uint32Value();
  size_t len = info[5].As<Napi::Number>().Uint32Value();
  auto dst = info[6].As<Napi::Uint8Array>();
  size_t doff = info[7].As<Napi::Number>().Uint32Value();
  if (key.ByteLength() != 32 || len < 16 || soff + len > src.ByteLength() || doff + (len - 16) > dst.ByteLength()) {
    return Napi::Number::New(env, -1);
  }
  return Napi::Number::New(env, meshd::AeadOpen(key.Data(), counter, src.Data() + soff, static_cast<int>(len), dst.Data() + doff));
}

Napi::Value TunCloseJs(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = close(fd);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// Reads up to `slots` packets per readiness event into one preallocated buffer
// (slot i at i * slotSize + headroom), stores their lengths, then calls onPackets(count).
// A negative count is -errno for a read error other than EAGAIN.
class TunReader : public Napi::ObjectWrap<TunReader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "TunReader",
                       {InstanceMethod("start", &TunReader::Start), InstanceMethod("stop", &TunReader::Stop)});
  }

  explicit TunReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[1].IsTypedArray() || !info[4].IsTypedArray() || !info[5].IsFunction()) {
      Napi::TypeError::New(env, "new TunReader(fd, buffer, slotSize, headroom, lengths: Int32Array, onPackets)")
          .ThrowAsJavaScriptException();
      return;
    }
    fd_ = info[0].As<Napi::Number>().Int32Value();
    auto buf = info[1].As<Napi::Uint8Array>();
    bufRef_ = Napi::Persistent(buf);
    data_ = buf.Data();
    bufLen_ = buf.ByteLength();
    slotSize_ = info[2].As<Napi::Number>().Uint32Value();
    headroom_ = info[3].As<Napi::Number>().Uint32Value();
    auto lengths = info[4].As<Napi::Int32Array>();
    lengthsRef_ = Napi::Persistent(lengths);
    lengths_ = lengths.Data();
    slots_ = lengths.ElementLength();
    if (slotSize_ <= headroom_ || static_cast<size_t>(slots_) * slotSize_ > bufLen_) {
      Napi::RangeError::New(env, "buffer too small for slots * slotSize").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[5].As<Napi::Function>());
    context_ = new Napi::AsyncContext(env, "meshd:TunReader");
    env_ = env;
  }

  ~TunReader() override { delete context_; }

 private:
  struct PollHandle {
    uv_poll_t poll;
    TunReader* owner;
  };

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (handle_) return env.Undefined();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new PollHandle();
    handle_->owner = this;
    int r = uv_poll_init(loop, &handle_->poll, fd_);
    if (r == 0) r = uv_poll_start(&handle_->poll, UV_READABLE, OnReadable);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      return Napi::Number::New(env, r);
    }
    Ref();  // stay alive while polling
    return Napi::Number::New(env, 0);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (!handle_) return;
    uv_poll_stop(&handle_->poll);
    handle_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll),
             [](uv_handle_t* h) { delete reinterpret_cast<PollHandle*>(h); });
    handle_ = nullptr;
    Unref();
  }

  static void OnReadable(uv_poll_t* poll, int status, int events) {
    (void)events;
    auto* ph = reinterpret_cast<PollHandle*>(poll);
    if (!ph->owner) return;
    ph->owner->Drain(status);
  }

  void Drain(int status) {
    Napi::HandleScope scope(env_);
    int count = 0;
    int err = status < 0 ? status : 0;
    while (err == 0 && count < slots_) {
      uint8_t* dst = data_ + static_cast<size_t>(count) * slotSize_ + headroom_;
      ssize_t n = read(fd_, dst, slotSize_ - headroom_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = -errno;
        break;
      }
      lengths_[count++] = static_cast<int32_t>(n);
    }
    if (count > 0) Call(count);
    if (err != 0 && handle_) {
      StopPolling();
      Call(err);
    }
  }

  void Call(int value) {
    callback_.MakeCallback(Value(), {Napi::Number::New(env_, value)}, *context_);
  }

  Napi::Env env_ = Napi::Env(nullptr);
  int fd_ = -1;
  uint8_t* data_ = nullptr;
  size_t bufLen_ = 0;
  uint32_t slotSize_ = 0;
  uint32_t headroom_ = 0;
  int32_t* lengths_ = nullptr;
  int slots_ = 0;
  Napi::Reference<Napi::Uint8Array> bufRef_;
  Napi::Reference<Napi::Int32Array> lengthsRef_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  PollHandle* handle_ = nullptr;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New(env, TunOpenJs));
  exports.Set("tunWrite", Napi::Function::New(env, TunWriteJs));
  exports.Set("tunClose", Napi::Function::New(env, TunCloseJs));
  exports.Set("TunReader", TunReader::Init(env));
  exports.Set("aeadSeal", Napi::Function::New(env, AeadSealJs));
  exports.Set("aeadOpen", Napi::Function::New(env, AeadOpenJs));
  return exports;
}

}  // namespace

NODE_API_MODULE(meshd_native, Init)
