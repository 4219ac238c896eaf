#include "msgpack_io.hpp"

namespace mesh::swim {

bool MsgpackReader::read_map_header(std::uint32_t& n) {
  if (!need(1)) return false;
  const std::uint8_t tag = in_[pos_];
  if (tag >= 0x80 && tag <= 0x8f) {
    ++pos_;
    n = tag & 0x0fu;
    return true;
  }
  if (tag == 0xde) {
    if (!need(3)) return false;
    ++pos_;
    n = be16();
    return true;
  }
  if (tag == 0xdf) {
    if (!need(5)) return false;
    ++pos_;
    n = be32();
    return true;
  }
  return fail(DecodeError::Malformed, "expected a msgpack map");
}

bool MsgpackReader::raw_length(std::uint8_t tag, std::uint32_t& len) {
  switch (tag) {
    case 0xc4:  // bin8
    case 0xd9:  // str8
      if (!need(1)) return false;
      len = u8();
      return true;
    case 0xc5:  // bin16
    case 0xda:  // str16 / raw16
      if (!need(2)) return false;
      len = be16();
      return true;
    case 0xc6:  // bin32
    case 0xdb:  // str32 / raw32
      if (!need(4)) return false;
      len = be32();
      return true;
    default:
      if (tag >= 0xa0 && tag <= 0xbf) {
        len = tag & 0x1fu;
        return true;
      }
      return fail(DecodeError::Malformed, "expected a msgpack string or bytes");
  }
}

bool MsgpackReader::read_key(std::string_view& key) {
  if (!need(1)) return false;
  const std::uint8_t tag = in_[pos_];
  if (!((tag >= 0xa0 && tag <= 0xbf) || tag == 0xd9 || tag == 0xda || tag == 0xdb || tag == 0xc4 ||
        tag == 0xc5 || tag == 0xc6)) {
    return fail(DecodeError::Malformed, "map key is not a string");
  }
  ++pos_;
  std::uint32_t len = 0;
  if (!raw_length(tag, len) || !need(len)) return false;
  key = std::string_view(reinterpret_cast<const char*>(in_.data() + pos_), len);
  pos_ += len;
  return true;
}

bool MsgpackReader::read_bytes(ByteView& v) {
  if (!need(1)) return false;
  const std::uint8_t tag = in_[pos_];
  if (tag == 0xc0) {
    ++pos_;
    v = {};
    return true;
  }
  if (!((tag >= 0xa0 && tag <= 0xbf) || tag == 0xd9 || tag == 0xda || tag == 0xdb || tag == 0xc4 ||
        tag == 0xc5 || tag == 0xc6)) {
    return fail(DecodeError::Malformed, "expected a msgpack string or bytes");
  }
  ++pos_;
  std::uint32_t len = 0;
  if (!raw_length(tag, len) || !need(len)) return false;
  v = in_.subspan(pos_, len);
  pos_ += len;
  return true;
}

bool MsgpackReader::integer(std::uint8_t tag, std::uint64_t& bits, bool& is_neg) {
  is_neg = false;
  if (tag <= 0x7f) {
    bits = tag;
    return true;
  }
  if (tag >= 0xe0) {
    bits = static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<std::int8_t>(tag)));
    is_neg = true;
    return true;
  }
  std::int64_t s = 0;
  switch (tag) {
    case 0xcc:
      if (!need(1)) return false;
      bits = u8();
      return true;
    case 0xcd:
      if (!need(2)) return false;
      bits = be16();
      return true;
    case 0xce:
      if (!need(4)) return false;
      bits = be32();
      return true;
    case 0xcf:
      if (!need(8)) return false;
      bits = be64();
      return true;
    case 0xd0:
      if (!need(1)) return false;
      s = static_cast<std::int8_t>(u8());
      break;
    case 0xd1:
      if (!need(2)) return false;
      s = static_cast<std::int16_t>(be16());
      break;
    case 0xd2:
      if (!need(4)) return false;
      s = static_cast<std::int32_t>(be32());
      break;
    case 0xd3:
      if (!need(8)) return false;
      s = static_cast<std::int64_t>(be64());
      break;
    default: return fail(DecodeError::Malformed, "expected a msgpack integer");
  }
  bits = static_cast<std::uint64_t>(s);
  is_neg = s < 0;
  return true;
}

bool MsgpackReader::read_uint(std::uint64_t max, std::uint64_t& v) {
  if (!need(1)) return false;
  const std::uint8_t tag = u8();
  if (tag == 0xc0) {
    v = 0;
    return true;
  }
  std::uint64_t bits = 0;
  bool is_neg = false;
  if (!integer(tag, bits, is_neg)) return false;
  if (is_neg) return fail(DecodeError::Malformed, "negative value for an unsigned field");
  if (bits > max) return fail(DecodeError::Malformed, "integer out of range for its field");
  v = bits;
  return true;
}

bool MsgpackReader::read_int(std::int64_t min, std::int64_t max, std::int64_t& v) {
  if (!need(1)) return false;
  const std::uint8_t tag = u8();
  if (tag == 0xc0) {
    v = 0;
    return true;
  }
  std::uint64_t bits = 0;
  bool is_neg = false;
  if (!integer(tag, bits, is_neg)) return false;
  if (!is_neg && bits > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return fail(DecodeError::Malformed, "integer out of range for its field");
  }
  const auto s = static_cast<std::int64_t>(bits);
  if (s < min || s > max) return fail(DecodeError::Malformed, "integer out of range for its field");
  v = s;
  return true;
}

bool MsgpackReader::read_bool(bool& v) {
  if (!need(1)) return false;
  switch (u8()) {
    case 0xc0:
    case 0xc2:
    case 0x00: v = false; return true;
    case 0xc3:
    case 0x01: v = true; return true;
    default: return fail(DecodeError::Malformed, "expected a msgpack bool");
  }
}

bool MsgpackReader::skip() {
  // Values still to skip. Each step consumes at least one byte, so the loop
  // is bounded by the input size whatever the counts claim.
  std::uint64_t pending = 1;
  while (pending > 0) {
    if (!need(1)) return false;
    const std::uint8_t tag = u8();
    --pending;
    if (tag <= 0x7f || tag >= 0xe0) continue;  // fixint
    if (tag <= 0x8f) {                         // fixmap
      pending += 2u * (tag & 0x0fu);
      continue;
    }
    if (tag <= 0x9f) {  // fixarray
      pending += tag & 0x0fu;
      continue;
    }
    if (tag <= 0xbf) {  // fixstr
      const std::uint32_t len = tag & 0x1fu;
      if (!need(len)) return false;
      pos_ += len;
      continue;
    }
    std::uint64_t skip_bytes = 0;
    switch (tag) {
      case 0xc0:
      case 0xc2:
      case 0xc3: continue;
      case 0xc1: return fail(DecodeError::Malformed, "reserved msgpack byte 0xc1");
      case 0xc4:
      case 0xc5:
      case 0xc6:
      case 0xd9:
      case 0xda:
      case 0xdb: {
        std::uint32_t len = 0;
        if (!raw_length(tag, len)) return false;
        skip_bytes = len;
        break;
      }
      case 0xc7:
      case 0xc8:
      case 0xc9: {  // ext8/16/32: length, type, data
        std::uint32_t len = 0;
        const std::uint32_t w = tag == 0xc7 ? 1u : tag == 0xc8 ? 2u : 4u;
        if (!need(w)) return false;
        len = w == 1 ? u8() : w == 2 ? be16() : be32();
        skip_bytes = std::uint64_t{len} + 1;
        break;
      }
      case 0xca: skip_bytes = 4; break;
      case 0xcb: skip_bytes = 8; break;
      case 0xcc:
      case 0xd0: skip_bytes = 1; break;
      case 0xcd:
      case 0xd1: skip_bytes = 2; break;
      case 0xce:
      case 0xd2: skip_bytes = 4; break;
      case 0xcf:
      case 0xd3: skip_bytes = 8; break;
      case 0xd4: skip_bytes = 2; break;   // fixext1
      case 0xd5: skip_bytes = 3; break;   // fixext2
      case 0xd6: skip_bytes = 5; break;   // fixext4
      case 0xd7: skip_bytes = 9; break;   // fixext8
      case 0xd8: skip_bytes = 17; break;  // fixext16
      case 0xdc:
        if (!need(2)) return false;
        pending += be16();
        continue;
      case 0xdd:
        if (!need(4)) return false;
        pending += be32();
        continue;
      case 0xde:
        if (!need(2)) return false;
        pending += 2u * std::uint64_t{be16()};
        continue;
      case 0xdf:
        if (!need(4)) return false;
        pending += 2u * std::uint64_t{be32()};
        continue;
      default: return fail(DecodeError::Malformed, "unknown msgpack tag");
    }
    if (!need(skip_bytes)) return false;
    pos_ += static_cast<std::size_t>(skip_bytes);
  }
  return true;
}

}  // namespace mesh::swim
