// Encoding an envelope. Written by hand rather than through msgpack-c:
// encode writes exactly the bytes msgpack-c's packer would (smallest
// integer, str and bin headers), straight into the caller's vector.
#include "mesh/transport/envelope.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "wire_format.hpp"

namespace mesh::transport {

using detail::kFieldCount;
using detail::kIdBytes;

namespace {

class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}

  void array_header(std::uint32_t n) {
    if (n <= 15) {
      byte(static_cast<std::uint8_t>(0x90u | n));
    } else if (n <= 0xffffu) {
      tagged(0xdc, n, 2);
    } else {
      tagged(0xdd, n, 4);
    }
  }

  void unsigned_int(std::uint64_t v) {
    if (v <= 0x7fu) {
      byte(static_cast<std::uint8_t>(v));
    } else if (v <= 0xffu) {
      tagged(0xcc, v, 1);
    } else if (v <= 0xffffu) {
      tagged(0xcd, v, 2);
    } else if (v <= 0xffffffffu) {
      tagged(0xce, v, 4);
    } else {
      tagged(0xcf, v, 8);
    }
  }

  void signed_int(std::int64_t v) {
    if (v >= 0) {
      unsigned_int(static_cast<std::uint64_t>(v));
      return;
    }
    const auto bits = static_cast<std::uint64_t>(v);  // two's complement
    if (v >= -32) {
      byte(static_cast<std::uint8_t>(bits & 0xffu));  // negative fixint
    } else if (v >= -128) {
      tagged(0xd0, bits, 1);
    } else if (v >= -32768) {
      tagged(0xd1, bits, 2);
    } else if (v >= -2147483648LL) {
      tagged(0xd2, bits, 4);
    } else {
      tagged(0xd3, bits, 8);
    }
  }

  void nil() { byte(0xc0); }

  void str(std::string_view s) {
    const std::size_t n = s.size();
    if (n <= 31) {
      byte(static_cast<std::uint8_t>(0xa0u | n));
    } else if (n <= 0xffu) {
      tagged(0xd9, n, 1);
    } else if (n <= 0xffffu) {
      tagged(0xda, n, 2);
    } else {
      tagged(0xdb, n, 4);
    }
    out_.insert(out_.end(), s.begin(), s.end());
  }

  void bin(std::span<const std::uint8_t> b) {
    const std::size_t n = b.size();
    if (n <= 0xffu) {
      tagged(0xc4, n, 1);
    } else if (n <= 0xffffu) {
      tagged(0xc5, n, 2);
    } else {
      tagged(0xc6, n, 4);
    }
    out_.insert(out_.end(), b.begin(), b.end());
  }

  void message_id(const MessageId& value) {
    std::array<std::uint8_t, kIdBytes> raw{};
    for (std::size_t i = 0; i < 8; ++i) {
      raw[i] = static_cast<std::uint8_t>(value.hi >> (56 - 8 * i));
      raw[8 + i] = static_cast<std::uint8_t>(value.lo >> (56 - 8 * i));
    }
    bin(raw);
  }

 private:
  void byte(std::uint8_t b) { out_.push_back(b); }

  // A one-byte tag followed by `width` big-endian bytes of `v`.
  void tagged(std::uint8_t tag, std::uint64_t v, unsigned width) {
    std::array<std::uint8_t, 9> buf{};
    buf[0] = tag;
    for (unsigned i = 0; i < width; ++i) {
      buf[1 + i] = static_cast<std::uint8_t>(v >> (8 * (width - 1 - i)));
    }
    out_.insert(out_.end(), buf.begin(), buf.begin() + 1 + width);
  }

  std::vector<std::uint8_t>& out_;
};

// Upper bound of the encoded size, so that encode reserves once.
std::size_t encoded_size_bound(const Envelope& e) {
  constexpr std::size_t kHeader = 5;  // the largest str/bin/array header
  constexpr std::size_t kInt = 9;
  return kHeader                                  // array
         + 4 * kInt                               // version, type, priority, error
         + 2 * (kHeader + kIdBytes)               // id, correlation
         + 3 * kHeader + e.sender_agent.size() + e.sender_node.size() + e.target.size()
         + 2 * kInt                               // created_ms, deadline_ms
         + 2 * kHeader + e.context.size() + e.payload.size()
         + kInt                                   // flags
         + kHeader + e.thread.size();
}

}  // namespace

void encode(const Envelope& e, std::vector<std::uint8_t>& out) {
  out.clear();
  out.reserve(encoded_size_bound(e));
  Writer w(out);
  // flags and thread are appended only when set (flags, as 0, also when a
  // thread follows): what every version-1 reader decodes.
  const std::uint32_t extra = !e.thread.empty() ? 2 : e.flags != 0 ? 1 : 0;
  w.array_header(static_cast<std::uint32_t>(kFieldCount) + extra);
  w.unsigned_int(kEnvelopeVersion);
  w.unsigned_int(static_cast<std::uint64_t>(e.type));
  w.unsigned_int(static_cast<std::uint64_t>(e.priority));
  w.message_id(e.id);
  if (e.correlation) {
    w.message_id(*e.correlation);
  } else {
    w.nil();
  }
  w.str(e.sender_agent);
  w.str(e.sender_node);
  w.str(e.target);
  w.signed_int(e.created_ms);
  w.signed_int(e.deadline_ms);
  w.unsigned_int(static_cast<std::uint64_t>(e.error));
  w.bin(e.context);
  w.bin(e.payload);
  if (extra >= 1) w.unsigned_int(e.flags);
  if (extra == 2) w.bin(e.thread);
}

std::vector<std::uint8_t> encode(const Envelope& envelope) {
  std::vector<std::uint8_t> out;
  encode(envelope, out);
  return out;
}

}  // namespace mesh::transport
