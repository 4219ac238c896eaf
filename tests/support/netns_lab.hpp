// A small network of test hosts made of Linux network namespaces: one
// bridge namespace and N host namespaces, each joined to the bridge by a
// veth pair, addressed 10.251.<lab>.<i+1>/24. Everything is created by the
// constructor and removed by the destructor, so a test never leaves
// namespaces behind (names carry the process id, so parallel tests and a
// crashed earlier run cannot collide).
//
// Faults are applied on the bridge with nftables, so that senders see no
// error, only silence, as on a real network:
//  - partition(a, b): nothing passes between the two groups;
//  - set_loss(p): every UDP/TCP frame crossing the bridge is dropped with
//    probability p (nft numgen random).
// The kernel here has no sch_netem, so delay is not modelled.
//
// Needs root, `ip` (iproute2) and `nft` (nftables); available() says why not.
#pragma once

#include <string>
#include <vector>

namespace mesh::test {

class NetnsLab {
 public:
  // Empty when the lab can run here, else the reason it cannot.
  static std::string unavailable_reason();

  explicit NetnsLab(int hosts);  // throws std::runtime_error on failure
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  int size() const { return hosts_; }
  const std::string& ns(int i) const { return host_ns_.at(static_cast<std::size_t>(i)); }
  std::string ip(int i) const;
  // argv prefix that runs a command inside host i: {"/path/to/ip", "netns",
  // "exec", ns} (a path: execve does not search PATH).
  std::vector<std::string> exec_prefix(int i) const;

  void partition(const std::vector<int>& a, const std::vector<int>& b);
  void set_loss(double p);  // 0 removes it
  void heal();              // removes partitions and loss

 private:
  void apply_rules();
  int hosts_;
  int lab_;
  std::string ip_bin_;  // `ip`'s path
  std::string bridge_ns_;
  std::vector<std::string> host_ns_;
  std::vector<std::pair<std::vector<int>, std::vector<int>>> partitions_;
  double loss_ = 0.0;
};

// Runs a shell command; throws std::runtime_error with its output on failure.
std::string run_checked(const std::string& command);

}  // namespace mesh::test
