// Text that arrives from the network: member names, tags, agent ids, roles.
//
// Every such string is checked where it enters (valid UTF-8, bounded
// length, no control characters) and escaped where it leaves for a human
// (log lines, CLI tables), so that one hostile peer can neither take down
// a reader of the membership (a JSON encoder that throws on invalid UTF-8)
// nor forge a log line (a name holding "\n").
//
// It lives in the lowest layer's include directory, beside log_fields.hpp,
// so that every layer can use it; it needs only the standard library.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mesh {

// Length of the well-formed UTF-8 sequence that starts at s[i], or 0 if
// there is none (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF). i must be < s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

// True when `s` is well-formed UTF-8 throughout.
bool valid_utf8(std::string_view s);

// True for the C0 controls, DEL and the C1 controls (U+0080..U+009F).
// Expects valid UTF-8; looks at code points, not bytes.
bool has_control_characters(std::string_view s);

// Why `s` is not acceptable as an identifier-like field named `what`
// ("member name", "tag value", "agent id", ...), or nullopt if it is:
// valid UTF-8, at most `max_bytes` long, no control characters, and not
// empty unless `allow_empty`. The message is safe to print: it never
// echoes `s`.
std::optional<std::string> check_text(std::string_view what, std::string_view s,
                                      std::size_t max_bytes, bool allow_empty = false);

// `s` with every control character, backslash and byte that is not part of
// well-formed UTF-8 written as \xNN (so "\n" becomes "\x0a"): printable on
// one line, and two different inputs never print the same. Printable UTF-8
// passes through unchanged.
std::string escape_text(std::string_view s);

// Appends `s` to `out` as a JSON string, quotes included, as nlohmann::json
// dumps one without ensure_ascii: '"', '\\' and the C0 controls escaped
// (\b \f \n \r \t, the rest \u00xx), UTF-8 as it is, and each byte that
// is not part of well-formed UTF-8 replaced by U+FFFD. For code that writes
// JSON text itself, where building a json value would cost more.
void append_json_string(std::string& out, std::string_view s);

}  // namespace mesh
