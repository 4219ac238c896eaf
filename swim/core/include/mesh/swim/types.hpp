// Basic vocabulary of the SWIM core: time, addresses, bytes and results.
//
// The core never reads a clock. Time is a point on the caller's monotonic
// timeline (a real steady clock in the driver, virtual time in the
// simulator), in microseconds.
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace mesh::swim {

// A clock type without now(): the caller supplies every time point.
struct Clock {
  using rep = std::int64_t;
  using period = std::micro;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<Clock>;
  static constexpr bool is_steady = true;
};
using Time = Clock::time_point;
using Duration = Clock::duration;

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string_view(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// An IPv4 or IPv6 address and a port, as memberlist carries them: the IP as
// 4 or 16 raw bytes.
struct Address {
  std::array<std::uint8_t, 16> ip{};
  std::uint8_t ip_len = 0;  // 4, 16, or 0 when unset
  std::uint16_t port = 0;

  static Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port) {
    Address x;
    x.ip = {a, b, c, d};
    x.ip_len = 4;
    x.port = port;
    return x;
  }
  // From memberlist's []byte form; nullopt unless 4 or 16 bytes.
  static std::optional<Address> from_bytes(ByteView ip, std::uint16_t port) {
    if (ip.size() != 4 && ip.size() != 16) return std::nullopt;
    Address x;
    for (std::size_t i = 0; i < ip.size(); ++i) x.ip[i] = ip[i];
    x.ip_len = static_cast<std::uint8_t>(ip.size());
    x.port = port;
    return x;
  }
  ByteView ip_bytes() const { return {ip.data(), ip_len}; }
  bool valid() const { return ip_len == 4 || ip_len == 16; }
  // "1.2.3.4:7946" or "[::1]:7946".
  std::string to_string() const;

  friend bool operator==(const Address&, const Address&) = default;
  friend auto operator<=>(const Address&, const Address&) = default;
};

struct AddressHash {
  std::size_t operator()(const Address& a) const noexcept {
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < a.ip_len; ++i) h = (h ^ a.ip[i]) * 1099511628211ull;
    h = (h ^ a.port) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

// Why a piece of untrusted input was rejected. Every value is counted
// separately by the node (see NodeStats).
enum class DecodeError : std::uint8_t {
  Truncated,        // ran out of bytes inside a value or a frame
  Malformed,        // not valid msgpack, or a field of the wrong msgpack type
  UnknownType,      // message type byte we do not know
  TooLarge,         // over a configured or protocol limit
  BadCrc,           // CRC-32 mismatch
  BadCompression,   // unknown algorithm or a corrupt LZW stream
  TooDeep,          // wrappers (compound/compress/crc) nested too deeply
  Incomplete,       // streams only: more bytes are needed, not an error yet
  BadName,          // a member name that validate_member_name() refuses
  Count_            // number of values; keep last
};

std::string_view to_string(DecodeError e);

// A decode failure: what kind, and a short human-readable reason.
struct Error {
  DecodeError code = DecodeError::Malformed;
  std::string reason;
};

// Minimal expected<T, Error> (std::expected is C++23).
template <class T>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  Result(Error err) : v_(std::in_place_index<1>, std::move(err)) {}   // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Member names. memberlist accepts any string; we accept a name only when
// it is 1..kMemberNameMax bytes of valid UTF-8 (shortest forms, no
// surrogates) without control characters (U+0000-U+001F, U+007F-U+009F).
// Names end up in logs, JSON and HTTP answers, where invalid UTF-8 breaks
// serializers and a newline forges log lines. 256 bytes holds any DNS name
// (253), which is what Serf uses by default (the host name).
inline constexpr std::size_t kMemberNameMax = 256;
// nullopt when `name` is acceptable, else one line saying why not (it does
// not quote the name; mesh::check_text's wording). Allocates only on failure.
std::optional<std::string> validate_member_name(std::string_view name);
// The same test without the reason: allocation-free, for the hot path.
bool valid_member_name(std::string_view name) noexcept;

inline Error make_error(DecodeError code, std::string reason) {
  return Error{code, std::move(reason)};
}

}  // namespace mesh::swim
