#include "netns_lab.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace mesh::test {

std::string run_checked(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run: " + command);
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), static_cast<int>(buf.size()), pipe) != nullptr) output += buf.data();
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error("failed (" + std::to_string(status) + "): " + command + ": " + output);
  return output;
}

namespace {
bool has_command(const char* name) {
  const std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}
}  // namespace

std::string NetnsLab::unavailable_reason() {
  if (::geteuid() != 0) return "needs root to create network namespaces";
  if (!has_command("ip")) return "needs `ip` (iproute2)";
  if (!has_command("nft")) return "needs `nft` (nftables)";
  return {};
}

NetnsLab::NetnsLab(int hosts) : hosts_(hosts), lab_(static_cast<int>(::getpid() % 200) + 1) {
  if (hosts < 1 || hosts > 250) throw std::invalid_argument("NetnsLab: 1..250 hosts");
  ip_bin_ = run_checked("command -v ip");
  while (!ip_bin_.empty() && (ip_bin_.back() == '\n' || ip_bin_.back() == ' ')) ip_bin_.pop_back();
  const std::string tag = "mesh" + std::to_string(::getpid());
  bridge_ns_ = tag + "-br";
  try {
    run_checked("ip netns add " + bridge_ns_);
    run_checked("ip -n " + bridge_ns_ + " link add br0 type bridge");
    run_checked("ip -n " + bridge_ns_ + " link set br0 up");
    for (int i = 0; i < hosts; ++i) {
      const std::string ns = tag + "-h" + std::to_string(i);
      const std::string veth = "v" + std::to_string(::getpid() % 100000) + "h" + std::to_string(i);
      run_checked("ip netns add " + ns);
      host_ns_.push_back(ns);
      run_checked("ip link add " + veth + " type veth peer name eth0 netns " + ns);
      run_checked("ip link set " + veth + " netns " + bridge_ns_);
      run_checked("ip -n " + bridge_ns_ + " link set " + veth + " master br0");
      run_checked("ip -n " + bridge_ns_ + " link set " + veth + " up");
      run_checked("ip -n " + ns + " addr add " + ip(i) + "/24 dev eth0");
      run_checked("ip -n " + ns + " link set eth0 up");
      run_checked("ip -n " + ns + " link set lo up");
    }
    apply_rules();
  } catch (...) {
    this->~NetnsLab();
    throw;
  }
}

NetnsLab::~NetnsLab() {
  // Deleting a namespace deletes its veth end, and with it the peer.
  for (const auto& ns : host_ns_) std::system(("ip netns del " + ns + " >/dev/null 2>&1").c_str());
  host_ns_.clear();
  if (!bridge_ns_.empty()) std::system(("ip netns del " + bridge_ns_ + " >/dev/null 2>&1").c_str());
  bridge_ns_.clear();
}

std::string NetnsLab::ip(int i) const {
  return "10.251." + std::to_string(lab_) + "." + std::to_string(i + 1);
}

std::vector<std::string> NetnsLab::exec_prefix(int i) const {
  return {ip_bin_, "netns", "exec", ns(i)};
}

void NetnsLab::partition(const std::vector<int>& a, const std::vector<int>& b) {
  partitions_.emplace_back(a, b);
  apply_rules();
}

void NetnsLab::set_loss(double p) {
  loss_ = p;
  apply_rules();
}

void NetnsLab::heal() {
  partitions_.clear();
  loss_ = 0.0;
  apply_rules();
}

// The whole rule set is rewritten each time: one atomic nft transaction,
// no rule handles to track.
void NetnsLab::apply_rules() {
  auto set_of = [&](const std::vector<int>& hosts) {
    std::string s = "{ ";
    for (std::size_t k = 0; k < hosts.size(); ++k) s += (k ? ", " : "") + ip(hosts[k]);
    return s + " }";
  };
  std::ostringstream rules;
  rules << "table bridge meshlab\ndelete table bridge meshlab\n"
        << "table bridge meshlab {\n  chain forward {\n"
        << "    type filter hook forward priority 0; policy accept;\n";
  for (const auto& [a, b] : partitions_) {
    rules << "    ip saddr " << set_of(a) << " ip daddr " << set_of(b) << " drop\n";
    rules << "    ip saddr " << set_of(b) << " ip daddr " << set_of(a) << " drop\n";
  }
  if (loss_ > 0.0) {
    const int per_mille = static_cast<int>(loss_ * 1000.0 + 0.5);
    rules << "    meta l4proto { udp, tcp } numgen random mod 1000 < " << per_mille << " drop\n";
  }
  rules << "  }\n}\n";
  const std::string file = "/tmp/" + bridge_ns_ + ".nft";
  FILE* f = std::fopen(file.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + file);
  std::fputs(rules.str().c_str(), f);
  std::fclose(f);
  run_checked("ip netns exec " + bridge_ns_ + " nft -f " + file);
  std::remove(file.c_str());
}

}  // namespace mesh::test
