// See readers.h. Layouts are chosen by the JavaScript side and checked here once, at construction.
#include "readers.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "poll-reader.h"
#include "udp.h"
#include "vnet.h"

namespace meshd {

namespace {

int64_t MonotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// new TunReader(fd, buffer, headroom, tailroom, offsets, lengths, stats, offload, onPackets)
// Packets are packed into `buffer` 16-byte aligned, each with `headroom` bytes free before it and
// `tailroom` after (room for a WireGuard header, padding and tag: sealed in place).
// stats[0] counts malformed packets from the kernel, stats[1] packets dropped for want of room,
// stats[2] wakeups handed over after one read (sparse traffic, see ReadBatch), stats[3] reads that
// found the queue empty (EAGAIN).
class TunReader : public PollReader<TunReader> {
 public:
  static Napi::Function Init(Napi::Env env) { return Define(env, "TunReader"); }

  explicit TunReader(const Napi::CallbackInfo& info) : PollReader<TunReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 9 || !info[1].IsTypedArray() || !info[4].IsTypedArray() || !info[5].IsTypedArray() ||
        !info[6].IsTypedArray() || !info[8].IsFunction()) {
      Napi::TypeError::New(env, "new TunReader(fd, buffer, headroom, tailroom, offsets, lengths, stats, offload, onPackets)")
          .ThrowAsJavaScriptException();
      return;
    }
    auto buf = info[1].As<Napi::Uint8Array>();
    auto offsets = info[4].As<Napi::Int32Array>();
    auto lengths = info[5].As<Napi::Int32Array>();
    auto stats = info[6].As<Napi::Int32Array>();
    refs_[0] = Napi::Persistent(static_cast<Napi::Object>(buf));
    refs_[1] = Napi::Persistent(static_cast<Napi::Object>(offsets));
    refs_[2] = Napi::Persistent(static_cast<Napi::Object>(lengths));
    refs_[3] = Napi::Persistent(static_cast<Napi::Object>(stats));
    sink_.base = buf.Data();
    sink_.capacity = buf.ByteLength();
    sink_.headroom = info[2].As<Napi::Number>().Int32Value();
    sink_.tailroom = info[3].As<Napi::Number>().Int32Value();
    sink_.offsets = offsets.Data();
    sink_.lengths = lengths.Data();
    sink_.maxPackets = static_cast<int>(offsets.ElementLength());
    stats_ = stats.Data();
    offload_ = info[7].ToBoolean().Value();
    size_t perRead = static_cast<size_t>(kReserveSegments) * (sink_.headroom + sink_.tailroom + 16) + 2 * kReadMax;
    if (lengths.ElementLength() < offsets.ElementLength() || stats.ElementLength() < 4 || sink_.maxPackets < kReserveSegments ||
        sink_.capacity < perRead || sink_.headroom < 0 || sink_.tailroom < 0) {
      Napi::RangeError::New(env, "TunReader: buffer or arrays too small").ThrowAsJavaScriptException();
      return;
    }
    reserveBytes_ = perRead;
    PollReader<TunReader>::Init(info[0].As<Napi::Number>().Int32Value(), info[8].As<Napi::Function>(), "meshd:TunReader");
  }

  int ReadBatch() {
    sink_.used = 0;
    sink_.count = 0;
    // Sparse traffic (the last batch was a single read, and the reader sat idle for a while since
    // the last wakeup was handled): hand over what the first read gives without the read that
    // would only say EAGAIN, which is on the way of every packet there. Polling is level-triggered:
    // if more was queued, the next wakeup follows as soon as the callback returns, with no idle
    // time between, and reads a whole batch again.
    bool single = sparse_ && MonotonicNs() - drainedNs_ > kIdleNs;
    if (single) stats_[2]++;
    int got = 0;
    for (int reads = 0; reads < kMaxReads; reads++) {
      if (sink_.count + kReserveSegments > sink_.maxPackets || sink_.used + reserveBytes_ > sink_.capacity) break;
      ssize_t n;
      if (offload_) {
        n = read(fd_, scratch_, sizeof(scratch_));
      } else {
        size_t pos = (sink_.used + 15) & ~static_cast<size_t>(15);
        n = read(fd_, sink_.base + pos + sink_.headroom, kReadMax);
        if (n >= 0) {
          sink_.offsets[sink_.count] = static_cast<int32_t>(pos + sink_.headroom);
          sink_.lengths[sink_.count++] = static_cast<int32_t>(n);
          sink_.used = pos + sink_.headroom + n + sink_.tailroom;
          if (++got == 1 && single) break;
          continue;
        }
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          stats_[3]++;
          break;
        }
        return sink_.count > 0 ? sink_.count : -errno;
      }
      got++;
      if (n < kVnetHdrLen) {
        stats_[0]++;
      } else {
        int r = SegmentPacket(ParseVnetHdr(scratch_), scratch_ + kVnetHdrLen, static_cast<int>(n) - kVnetHdrLen, &sink_);
        if (r == -1) stats_[0]++;
        if (r == -2) stats_[1]++;
      }
      if (got == 1 && single) break;
    }
    if (!single && got > 0) sparse_ = got == 1;
    return sink_.count;
  }

  void Drained() { drainedNs_ = MonotonicNs(); }

 private:
  static constexpr int kMaxReads = 64;
  static constexpr int kReadMax = 65535;
  // Idle for longer than this since the last wakeup was handled: traffic is sparse (see ReadBatch).
  static constexpr int64_t kIdleNs = 200 * 1000;
  // Room kept free before each read: the most segments one 64 KiB superpacket can become (TCP at an
  // MSS of 410 or more; a UDP_SEGMENT send is at most the kernel's UDP_MAX_SEGMENTS, 128).
  static constexpr int kReserveSegments = 160;
  Napi::Reference<Napi::Object> refs_[4];
  SegmentSink sink_{};
  int32_t* stats_ = nullptr;
  bool offload_ = false;
  size_t reserveBytes_ = 0;
  bool sparse_ = false;
  int64_t drainedNs_ = 0;
  uint8_t scratch_[kVnetHdrLen + kReadMax];
};

// new UdpReader(fd, buffer, slotSize, lengths, gso, addrs, onPackets): datagram i is at
// i * slotSize, lengths[i] long (-1: truncated), gso[i] its segment size if the kernel coalesced
// several (0 otherwise), addrs[18 * i...] its source (see udp.h).
class UdpReader : public PollReader<UdpReader> {
 public:
  static Napi::Function Init(Napi::Env env) { return Define(env, "UdpReader"); }

  explicit UdpReader(const Napi::CallbackInfo& info) : PollReader<UdpReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 7 || !info[1].IsTypedArray() || !info[3].IsTypedArray() || !info[4].IsTypedArray() ||
        !info[5].IsTypedArray() || !info[6].IsFunction()) {
      Napi::TypeError::New(env, "new UdpReader(fd, buffer, slotSize, lengths, gso, addrs, onPackets)").ThrowAsJavaScriptException();
      return;
    }
    auto buf = info[1].As<Napi::Uint8Array>();
    auto lengths = info[3].As<Napi::Int32Array>();
    auto gso = info[4].As<Napi::Int32Array>();
    auto addrs = info[5].As<Napi::Uint8Array>();
    refs_[0] = Napi::Persistent(static_cast<Napi::Object>(buf));
    refs_[1] = Napi::Persistent(static_cast<Napi::Object>(lengths));
    refs_[2] = Napi::Persistent(static_cast<Napi::Object>(gso));
    refs_[3] = Napi::Persistent(static_cast<Napi::Object>(addrs));
    base_ = buf.Data();
    slotSize_ = info[2].As<Napi::Number>().Int32Value();
    slots_ = static_cast<int>(lengths.ElementLength());
    lengths_ = lengths.Data();
    gso_ = gso.Data();
    addrs_ = addrs.Data();
    if (slotSize_ <= 0 || static_cast<size_t>(slots_) * slotSize_ > buf.ByteLength() || gso.ElementLength() < lengths.ElementLength() ||
        addrs.ByteLength() < static_cast<size_t>(slots_) * kAddrLen) {
      Napi::RangeError::New(env, "UdpReader: buffer or arrays too small").ThrowAsJavaScriptException();
      return;
    }
    PollReader<UdpReader>::Init(info[0].As<Napi::Number>().Int32Value(), info[6].As<Napi::Function>(), "meshd:UdpReader");
  }

  int ReadBatch() { return UdpRecvBatch(fd_, base_, slotSize_, slots_, lengths_, gso_, addrs_); }
  void Drained() {}

 private:
  Napi::Reference<Napi::Object> refs_[4];
  uint8_t* base_ = nullptr;
  int slotSize_ = 0;
  int slots_ = 0;
  int32_t* lengths_ = nullptr;
  int32_t* gso_ = nullptr;
  uint8_t* addrs_ = nullptr;
};

}  // namespace

Napi::Function DefineTunReader(Napi::Env env) { return TunReader::Init(env); }
Napi::Function DefineUdpReader(Napi::Env env) { return UdpReader::Init(env); }

}  // namespace meshd
