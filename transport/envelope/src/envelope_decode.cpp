// Decoding an envelope: a bounds-checked reader over the frame, the strict
// pass that validates every field, and the lenient pass that salvages the
// type and id of a frame the strict pass refused.
//
// Written by hand rather than through msgpack-c: msgpack-c's object
// unpacker allocates a zone, and its SAX parser keeps its container stack
// in a std::vector, so neither meets "no heap allocation for a well-formed
// frame". The reader never throws, so decode needs no try/catch on the
// data path.
#include "mesh/transport/envelope.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "wire_format.hpp"

namespace mesh::transport {

using detail::kFieldCount;
using detail::kIdBytes;

namespace {

// Containers inside the context or inside appended fields may nest this
// deep. Nothing in version 1 needs more than a few levels; the bound keeps
// the skipper's stack fixed-size and garbage cheap to reject.
constexpr std::size_t kMaxNesting = 32;

// A well-formed head (array header, version, type, priority, id) fits in
// 50 bytes; salvaging an oversized frame looks at no more than this.
constexpr std::size_t kSalvageHeadBytes = 64;

// A bounds-checked cursor over untrusted bytes. Every read either succeeds
// and advances, or returns false; nothing here allocates or throws.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}

  std::size_t pos() const { return pos_; }
  bool at_end() const { return pos_ == in_.size(); }

  bool array_header(std::uint32_t& n) {
    std::uint8_t tag = 0;
    if (!peek(tag)) return false;
    if (tag >= 0x90 && tag <= 0x9f) {
      ++pos_;
      n = tag & 0x0fu;
      return true;
    }
    if (tag == 0xdc || tag == 0xdd) {
      std::uint64_t v = 0;
      if (!tagged(tag == 0xdc ? 2 : 4, v)) return false;
      n = static_cast<std::uint32_t>(v);
      return true;
    }
    return false;
  }

  // Any msgpack integer whose value is >= 0 (some encoders write small
  // non-negative values in the signed formats).
  bool unsigned_int(std::uint64_t& v) {
    std::uint8_t tag = 0;
    if (!peek(tag)) return false;
    if (tag <= 0x7f) {
      ++pos_;
      v = tag;
      return true;
    }
    if (tag >= 0xcc && tag <= 0xcf) return tagged(1u << (tag - 0xcc), v);
    if (tag >= 0xd0 && tag <= 0xd3) {
      const std::size_t save = pos_;
      std::int64_t s = 0;
      if (!signed_int(s)) return false;
      if (s < 0) {
        pos_ = save;
        return false;
      }
      v = static_cast<std::uint64_t>(s);
      return true;
    }
    return false;
  }

  // Any msgpack integer that fits in int64.
  bool signed_int(std::int64_t& v) {
    std::uint8_t tag = 0;
    if (!peek(tag)) return false;
    if (tag >= 0xe0) {  // negative fixint
      ++pos_;
      v = static_cast<std::int8_t>(tag);
      return true;
    }
    if (tag >= 0xd0 && tag <= 0xd3) {
      const unsigned width = 1u << (tag - 0xd0);
      std::uint64_t raw = 0;
      if (!tagged(width, raw)) return false;
      // Sign-extend from `width` bytes.
      const unsigned shift = 64 - 8 * width;
      v = static_cast<std::int64_t>(raw << shift) >> shift;
      return true;
    }
    const std::size_t save = pos_;
    std::uint64_t u = 0;
    if (!unsigned_int(u)) return false;
    if (u > static_cast<std::uint64_t>(INT64_MAX)) {
      pos_ = save;
      return false;
    }
    v = static_cast<std::int64_t>(u);
    return true;
  }

  bool nil() {
    std::uint8_t tag = 0;
    if (!peek(tag) || tag != 0xc0) return false;
    ++pos_;
    return true;
  }

  bool str(std::string_view& s) {
    std::uint8_t tag = 0;
    if (!peek(tag)) return false;
    std::uint64_t n = 0;
    if (tag >= 0xa0 && tag <= 0xbf) {
      ++pos_;
      n = tag & 0x1fu;
    } else if (tag >= 0xd9 && tag <= 0xdb) {
      if (!tagged(1u << (tag - 0xd9), n)) return false;
    } else {
      return false;
    }
    const std::uint8_t* p = nullptr;
    if (!take(n, p)) return false;
    s = std::string_view(reinterpret_cast<const char*>(p), n);
    return true;
  }

  bool bin(std::span<const std::uint8_t>& b) {
    std::uint8_t tag = 0;
    if (!peek(tag) || tag < 0xc4 || tag > 0xc6) return false;
    std::uint64_t n = 0;
    if (!tagged(1u << (tag - 0xc4), n)) return false;
    const std::uint8_t* p = nullptr;
    if (!take(n, p)) return false;
    b = std::span<const std::uint8_t>(p, n);
    return true;
  }

  bool message_id(MessageId& value) {
    std::span<const std::uint8_t> b;
    if (!bin(b) || b.size() != kIdBytes) return false;
    value.hi = load_be(b.data(), 8);
    value.lo = load_be(b.data() + 8, 8);
    return true;
  }

  // Steps over one complete value of any type. Containers are walked with
  // a fixed-size stack of "items still to read" per level.
  bool skip() {
    // Left uninitialised: only entries up to `depth` are read, each after
    // being written.
    std::array<std::uint64_t, kMaxNesting + 1> pending;
    std::size_t depth = 0;
    pending[0] = 1;
    for (;;) {
      while (pending[depth] == 0) {
        if (depth == 0) return true;
        --depth;
      }
      --pending[depth];
      std::uint64_t children = 0;
      if (!skip_one(children)) return false;
      if (children == 0) continue;
      // Every child takes at least one byte: a count beyond what is left
      // is garbage, and rejecting it now keeps the loop bounded by the
      // frame size.
      if (children > in_.size() - pos_ || depth == kMaxNesting) return false;
      pending[++depth] = children;
    }
  }

  // A map is exactly what the context must hold.
  // A positive fixint or a uint 8 comes next (how flags is written).
  bool is_byte_next() const {
    if (pos_ >= in_.size()) return false;
    const std::uint8_t tag = in_[pos_];
    return tag <= 0x7f || tag == 0xcc;
  }

  bool is_bin_next() const {
    if (pos_ >= in_.size()) return false;
    const std::uint8_t tag = in_[pos_];
    return tag == 0xc4 || tag == 0xc5 || tag == 0xc6;
  }

  bool is_map_next() const {
    if (pos_ >= in_.size()) return false;
    const std::uint8_t tag = in_[pos_];
    return (tag >= 0x80 && tag <= 0x8f) || tag == 0xde || tag == 0xdf;
  }

 private:
  bool peek(std::uint8_t& tag) const {
    if (pos_ >= in_.size()) return false;
    tag = in_[pos_];
    return true;
  }

  static std::uint64_t load_be(const std::uint8_t* p, unsigned width) {
    std::uint64_t v = 0;
    for (unsigned i = 0; i < width; ++i) v = (v << 8) | p[i];
    return v;
  }

  // Consumes a tag byte and the `width` big-endian bytes after it.
  bool tagged(unsigned width, std::uint64_t& v) {
    if (in_.size() - pos_ < 1 + std::size_t{width}) return false;
    v = load_be(in_.data() + pos_ + 1, width);
    pos_ += 1 + width;
    return true;
  }

  bool take(std::uint64_t n, const std::uint8_t*& p) {
    if (n > in_.size() - pos_) return false;
    p = in_.data() + pos_;
    pos_ += static_cast<std::size_t>(n);
    return true;
  }

  // Consumes the header of one value (and the body of a scalar, str, bin
  // or ext); `children` is how many values a container's body holds.
  bool skip_one(std::uint64_t& children) {
    std::uint8_t tag = 0;
    if (!peek(tag)) return false;
    children = 0;
    std::uint64_t n = 0;
    const std::uint8_t* body = nullptr;
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
      ++pos_;  // fixints, nil, false, true
      return true;
    }
    if (tag >= 0x80 && tag <= 0x8f) {
      ++pos_;
      children = 2u * (tag & 0x0fu);
      return true;
    }
    if (tag >= 0x90 && tag <= 0x9f) {
      ++pos_;
      children = tag & 0x0fu;
      return true;
    }
    if (tag >= 0xa0 && tag <= 0xbf) {
      ++pos_;
      return take(tag & 0x1fu, body);
    }
    switch (tag) {
      case 0xc4: case 0xc5: case 0xc6:  // bin 8/16/32
        return tagged(1u << (tag - 0xc4), n) && take(n, body);
      case 0xc7: case 0xc8: case 0xc9:  // ext 8/16/32: length, type, data
        return tagged(1u << (tag - 0xc7), n) && take(n + 1, body);
      case 0xca: return tagged(4, n);   // float 32
      case 0xcb: return tagged(8, n);   // float 64
      case 0xcc: case 0xcd: case 0xce: case 0xcf:
        return tagged(1u << (tag - 0xcc), n);
      case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return tagged(1u << (tag - 0xd0), n);
      case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:  // fixext 1..16
        return tagged(0, n) && take(1 + (std::uint64_t{1} << (tag - 0xd4)), body);
      case 0xd9: case 0xda: case 0xdb:  // str 8/16/32
        return tagged(1u << (tag - 0xd9), n) && take(n, body);
      case 0xdc: case 0xdd:             // array 16/32
        if (!tagged(tag == 0xdc ? 2 : 4, n)) return false;
        children = n;
        return true;
      case 0xde: case 0xdf:             // map 16/32
        if (!tagged(tag == 0xde ? 2 : 4, n)) return false;
        children = 2 * n;
        return true;
      default:                          // 0xc1 is never used
        return false;
    }
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

template <typename Enum>
bool to_enum(std::uint64_t v, Enum max, Enum& out) {
  if (v > static_cast<std::uint64_t>(max)) return false;
  out = static_cast<Enum>(v);
  return true;
}

// The strict pass. Returns None, Malformed or BadVersion; on None `v` is
// complete.
DecodeError decode_fields(std::span<const std::uint8_t> frame, EnvelopeView& v) {
  Reader r(frame);
  std::uint32_t count = 0;
  if (!r.array_header(count)) return DecodeError::Malformed;

  // The version is looked at first, and before the element count: another
  // version may have any number of fields.
  std::uint64_t version = 0;
  if (count == 0 || !r.unsigned_int(version)) return DecodeError::Malformed;
  if (version != kEnvelopeVersion) return DecodeError::BadVersion;
  if (count < kFieldCount) return DecodeError::Malformed;

  std::uint64_t type = 0;
  std::uint64_t priority = 0;
  std::uint64_t error = 0;
  bool has_correlation = false;
  MessageId correlation;
  std::span<const std::uint8_t> context;
  if (!(r.unsigned_int(type) && to_enum(type, MessageType::Control, v.type) &&
        r.unsigned_int(priority) && to_enum(priority, Priority::Critical, v.priority) &&
        r.message_id(v.id))) {
    return DecodeError::Malformed;
  }
  if (!r.nil()) {
    if (!r.message_id(correlation)) return DecodeError::Malformed;
    has_correlation = true;
  }
  if (!(r.str(v.sender_agent) && r.str(v.sender_node) && r.str(v.target) &&
        r.signed_int(v.created_ms) && r.signed_int(v.deadline_ms) &&
        r.unsigned_int(error) && to_enum(error, ErrorCode::Loop, v.error) &&
        r.bin(context) && r.bin(v.payload))) {
    return DecodeError::Malformed;
  }
  // Element 13 is flags when it is a byte-sized positive int, element 14
  // the thread when it is a bin; anything else there, and every later
  // element, is a field of a later revision, skipped.
  v.flags = 0;
  v.thread = {};
  std::uint32_t next = kFieldCount;
  if (count > next && r.is_byte_next()) {
    std::uint64_t flags = 0;
    if (!r.unsigned_int(flags)) return DecodeError::Malformed;
    v.flags = static_cast<std::uint8_t>(flags);
    ++next;
    if (count > next && r.is_bin_next()) {
      if (!r.bin(v.thread)) return DecodeError::Malformed;
      ++next;
    }
  }
  for (std::uint32_t i = next; i < count; ++i) {
    if (!r.skip()) return DecodeError::Malformed;
  }
  if (!r.at_end()) return DecodeError::Malformed;

  if (!context.empty()) {
    Reader c(context);
    if (!c.is_map_next() || !c.skip() || !c.at_end()) return DecodeError::Malformed;
  }
  v.context = context;
  if (has_correlation) {
    v.correlation = correlation;
  } else {
    v.correlation.reset();
  }
  return DecodeError::None;
}

// The lenient pass over the first four elements, for a frame the strict
// pass refused: a broken request still gets an Error reply if its type and
// id can be read.
void salvage(std::span<const std::uint8_t> frame, DecodeResult& result) {
  Reader r(frame);
  std::uint32_t count = 0;
  std::uint64_t type = 0;
  MessageType t{};
  MessageId id;
  if (r.array_header(count) && count >= 4 && r.skip() && r.unsigned_int(type) &&
      to_enum(type, MessageType::Control, t) && r.skip() && r.message_id(id)) {
    result.salvaged_type = t;
    result.salvaged_id = id;
  }
}

}  // namespace

DecodeResult decode(std::span<const std::uint8_t> frame, std::size_t max_frame_bytes) {
  DecodeResult result;
  if (frame.size() > max_frame_bytes) {
    // Not parsed, but the head is cheap to read and lets the receiver
    // answer an oversized request with an Oversized error.
    result.error = DecodeError::Oversized;
    salvage(frame.first(std::min(frame.size(), kSalvageHeadBytes)), result);
    return result;
  }
  result.error = decode_fields(frame, result.view);
  if (result.ok()) {
    result.salvaged_type = result.view.type;
    result.salvaged_id = result.view.id;
  } else {
    result.view = EnvelopeView{};
    salvage(frame, result);
  }
  return result;
}

}  // namespace mesh::transport
