// The audit file format's pieces (audit_format.hpp).
#include "audit_format.hpp"

#include <dirent.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <system_error>

#include "mesh/json_limits.hpp"

namespace mesh::audit_detail {

std::string Sha256::hex(std::string_view bytes) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> md{};
  crypto_hash_sha256(md.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(kHashHexBytes, '0');
  for (std::size_t i = 0; i < md.size(); ++i) {
    out[2 * i] = kDigits[md[i] >> 4];
    out[2 * i + 1] = kDigits[md[i] & 0x0f];
  }
  return out;
}

bool valid_node(std::string_view node) {
  if (node.empty() || node.size() > kMaxNodeBytes) return false;
  return std::all_of(node.begin(), node.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string file_name(std::string_view node, std::uint64_t index) {
  std::string digits = std::to_string(index);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return "audit-" + std::string(node) + "-" + digits + ".jsonl";
}

std::optional<FileName> parse_file_name(std::string_view name) {
  constexpr std::string_view kPrefix = "audit-", kSuffix = ".jsonl";
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  name.remove_suffix(kSuffix.size());
  // The node may hold '-' itself: the index is what follows the last one.
  const auto dash = name.rfind('-');
  if (dash == std::string_view::npos) return std::nullopt;
  const std::string_view node = name.substr(0, dash), digits = name.substr(dash + 1);
  if (!valid_node(node) || digits.size() < 6 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  FileName out{std::string(node), 0};
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.index);
  if (ec != std::errc() || end != digits.data() + digits.size() || out.index == 0) return std::nullopt;
  return out;
}

std::string lock_name(std::string_view node) { return ".audit-" + std::string(node) + ".lock"; }

std::optional<DirListing> list_dir(const std::string& dir, std::string* error) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (error != nullptr) *error = errno_text(errno);
    return std::nullopt;
  }
  DirListing out;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    if (auto f = parse_file_name(e->d_name)) {
      out[f->node].push_back({f->index, dir + "/" + e->d_name});
    }
    errno = 0;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) {
    if (error != nullptr) *error = errno_text(err);
    return std::nullopt;
  }
  for (auto& [node, files] : out) {
    std::sort(files.begin(), files.end(), [](const DirFile& a, const DirFile& b) { return a.index < b.index; });
  }
  return out;
}

void append_line(Sha256& sha, std::uint64_t seq, std::string_view prev, std::string_view fields,
                 std::string& out, std::string& hash_out) {
  // `fields` is "{...}" or "{}": its members go between prev and hash.
  const std::string_view members = fields.size() > 2 ? fields.substr(1, fields.size() - 2) : std::string_view();
  const std::size_t start = out.size();
  out += kLinePrefix;
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, seq).ptr);
  out += ",\"prev\":\"";
  out += prev;
  out += '"';
  if (!members.empty()) {
    out += ',';
    out += members;
  }
  out += '}';
  hash_out = sha.hex(std::string_view(out).substr(start));
  out.pop_back();
  out += kHashKey;
  out += hash_out;
  out += "\"}\n";
}

bool is_hex_hash(std::string_view s) {
  return s.size() == kHashHexBytes &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<ParsedLine> parse_line(Sha256& sha, std::string_view line, LineError& error) {
  auto fail = [&](AuditProblem problem, std::string reason) -> std::optional<ParsedLine> {
    error = {problem, std::move(reason)};
    return std::nullopt;
  };
  if (line.empty()) return fail(AuditProblem::Malformed, "an empty line");
  if (line.size() < kLinePrefix.size() + kHashSuffixBytes || !line.starts_with(kLinePrefix) ||
      !line.ends_with("\"}")) {
    return fail(AuditProblem::Malformed, "not an audit record (it must start with {\"seq\": and end with its hash)");
  }
  const std::size_t cut = line.size() - kHashSuffixBytes;
  const std::string_view hash = line.substr(cut + kHashKey.size(), kHashHexBytes);
  if (line.substr(cut, kHashKey.size()) != kHashKey || !is_hex_hash(hash)) {
    return fail(AuditProblem::Malformed, "not an audit record (no \"hash\" of 64 hex digits at its end)");
  }
  std::string body(line.substr(0, cut));
  body += '}';
  if (sha.hex(body) != hash) {
    return fail(AuditProblem::HashMismatch, "hash mismatch: the line was changed after it was written");
  }
  // The hash holds, so the writer (or someone who recomputed the hash)
  // wrote these bytes; they must still be a record.
  std::string why;
  auto json = parse_json_bounded(body, &why);
  if (!json || !json->is_object()) {
    return fail(AuditProblem::Malformed, "its hash holds but it is not a JSON object" + (why.empty() ? "" : ": " + why));
  }
  ParsedLine out;
  const auto seq = json->find("seq");
  const auto prev = json->find("prev");
  if (seq == json->end() || !seq->is_number_unsigned()) {
    return fail(AuditProblem::Malformed, "its hash holds but \"seq\" is not an unsigned integer");
  }
  if (prev == json->end() || !prev->is_string() || !is_hex_hash(prev->get_ref<const std::string&>())) {
    return fail(AuditProblem::Malformed, "its hash holds but \"prev\" is not 64 hex digits");
  }
  out.seq = seq->get<std::uint64_t>();
  out.prev = prev->get<std::string>();
  out.hash = std::string(hash);
  (*json)["hash"] = out.hash;
  out.record = std::move(*json);
  return out;
}

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ == end_) pos_ = end_ = 0;
  for (;;) {
    const ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      errno_ = errno;
      eof_ = true;
      return false;
    }
    if (n == 0) {
      eof_ = true;
      return false;
    }
    end_ += static_cast<std::size_t>(n);
    return true;
  }
}

bool LineReader::next(Line& line) {
  line = Line{};
  bool any = false;
  for (;;) {
    if (pos_ == end_ && !fill()) {
      if (!any || errno_ != 0) return false;
      line.terminated = false;
      return true;
    }
    any = true;
    const char* begin = buf_.data() + pos_;
    const char* stop = buf_.data() + end_;
    const char* nl = std::find(begin, stop, '\n');
    const auto n = static_cast<std::size_t>(nl - begin);
    line.bytes += n;
    if (!line.too_long) {
      if (line.text.size() + n > max_) {
        line.too_long = true;
        line.text.clear();
        line.text.shrink_to_fit();
      } else {
        line.text.append(begin, n);
      }
    }
    pos_ += n;
    if (nl != stop) {
      ++pos_;
      return true;
    }
  }
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace mesh::audit_detail
