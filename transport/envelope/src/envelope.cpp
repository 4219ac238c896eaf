// The envelope codec (wire format: see envelope.hpp).
//
// Both directions are written by hand rather than through msgpack-c:
//  - encode writes exactly the bytes msgpack-c's packer would (smallest
//    integer, str and bin headers), straight into the caller's vector;
//  - decode is a bounds-checked reader over the frame. msgpack-c's object
//    unpacker allocates a zone, and its SAX parser keeps its container stack
//    in a std::vector, so neither meets "no heap allocation for a
//    well-formed frame". The reader never throws, so decode needs no
//    try/catch on the data path.
// The tests cross-check the wire bytes against msgpack-c.

#include "mesh/transport/envelope.hpp"

#include <algorithm>
#include <array>

namespace mesh::transport {

namespace {

constexpr std::size_t kFieldCount = 13;
constexpr std::size_t kIdBytes = 16;
// Containers inside the context or inside appended fields may nest this
// deep. Nothing in version 1 needs more than a few levels; the bound keeps
// the skipper's stack fixed-size and garbage cheap to reject.
constexpr std::size_t kMaxNesting = 32;

// A well-formed head (array header, version, type, priority, id) fits in
// 50 bytes; salvaging an oversized frame looks at no more than this.
constexpr std::size_t kSalvageHeadBytes = 64;

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ---------------------------------------------------------------- writing

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
         + 2 * kHeader + e.context.size() + e.payload.size();
}

// ---------------------------------------------------------------- reading

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
        r.unsigned_int(priority) && to_enum(priority, Priority::High, v.priority) &&
        r.message_id(v.id))) {
    return DecodeError::Malformed;
  }
  if (!r.nil()) {
    if (!r.message_id(correlation)) return DecodeError::Malformed;
    has_correlation = true;
  }
  if (!(r.str(v.sender_agent) && r.str(v.sender_node) && r.str(v.target) &&
        r.signed_int(v.created_ms) && r.signed_int(v.deadline_ms) &&
        r.unsigned_int(error) && to_enum(error, ErrorCode::Shutdown, v.error) &&
        r.bin(context) && r.bin(v.payload))) {
    return DecodeError::Malformed;
  }
  for (std::uint32_t i = kFieldCount; i < count; ++i) {
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

// ---------------------------------------------------------------- MessageId

std::string MessageId::to_string() const {
  std::string s(32, '0');
  for (std::size_t i = 0; i < 16; ++i) {
    s[i] = kHexDigits[(hi >> (60 - 4 * i)) & 0xfu];
    s[16 + i] = kHexDigits[(lo >> (60 - 4 * i)) & 0xfu];
  }
  return s;
}

std::optional<MessageId> MessageId::parse(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  MessageId id;
  for (std::size_t i = 0; i < 32; ++i) {
    const int d = hex_value(hex[i]);
    if (d < 0) return std::nullopt;
    std::uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | static_cast<std::uint64_t>(d);
  }
  return id;
}

// ---------------------------------------------------------------- names

std::string_view to_string(MessageType t) {
  switch (t) {
    case MessageType::Notify: return "notify";
    case MessageType::Request: return "request";
    case MessageType::Response: return "response";
    case MessageType::Error: return "error";
    case MessageType::Control: return "control";
  }
  return "unknown";
}

std::string_view to_string(Priority p) {
  switch (p) {
    case Priority::Normal: return "normal";
    case Priority::High: return "high";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode e) {
  switch (e) {
    case ErrorCode::None: return "none";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::PeerDead: return "peer_dead";
    case ErrorCode::PeerUnknown: return "peer_unknown";
    case ErrorCode::PeerUnreachable: return "peer_unreachable";
    case ErrorCode::MailboxFull: return "mailbox_full";
    case ErrorCode::Rejected: return "rejected";
    case ErrorCode::TargetUnknown: return "target_unknown";
    case ErrorCode::Malformed: return "malformed";
    case ErrorCode::Oversized: return "oversized";
    case ErrorCode::BadVersion: return "bad_version";
    case ErrorCode::Shutdown: return "shutdown";
  }
  return "unknown";
}

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::None: return "none";
    case DecodeError::Malformed: return "malformed";
    case DecodeError::Oversized: return "oversized";
    case DecodeError::BadVersion: return "bad_version";
  }
  return "unknown";
}

// ---------------------------------------------------------------- EnvelopeView

Envelope EnvelopeView::to_owned() const {
  Envelope e;
  e.id = id;
  e.type = type;
  e.priority = priority;
  e.correlation = correlation;
  e.sender_agent.assign(sender_agent);
  e.sender_node.assign(sender_node);
  e.target.assign(target);
  e.created_ms = created_ms;
  e.deadline_ms = deadline_ms;
  e.error = error;
  e.context.assign(context.begin(), context.end());
  e.payload.assign(payload.begin(), payload.end());
  return e;
}

// ---------------------------------------------------------------- encode / decode

void encode(const Envelope& e, std::vector<std::uint8_t>& out) {
  out.clear();
  out.reserve(encoded_size_bound(e));
  Writer w(out);
  w.array_header(static_cast<std::uint32_t>(kFieldCount));
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
}

std::vector<std::uint8_t> encode(const Envelope& envelope) {
  std::vector<std::uint8_t> out;
  encode(envelope, out);
  return out;
}

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
