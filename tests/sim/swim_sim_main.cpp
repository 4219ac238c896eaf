// swim-sim: runs a simulated SWIM cluster and prints what it measured.
//
//   swim-sim --nodes N --loss P --duration SECONDS --seed S --kill K
//            [--profile lan|wan|local] [--json] [--compress] [--stagger-ms MS]
//
// N nodes join through seeds 0, 1, 2 and converge; then the cluster runs for
// SECONDS of virtual time at packet loss P, and K random non-seed nodes are
// crashed half way. Exit code 0 when the run completed, whatever the
// figures; 2 on a bad argument (one line on stderr naming it).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include "sim_run.hpp"

namespace {

[[noreturn]] void bad(std::string_view arg, std::string_view why) {
  std::cerr << "swim-sim: bad argument " << arg << ": " << why << "\n";
  std::exit(2);
}

double parse_double(std::string_view arg, const char* v) {
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(v, &end);
  if (end == v || *end != '\0' || errno != 0 || !std::isfinite(d)) bad(arg, "not a number");
  return d;
}

unsigned long long parse_uint(std::string_view arg, const char* v) {
  char* end = nullptr;
  errno = 0;
  if (*v == '-') bad(arg, "must not be negative");
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0' || errno != 0) bad(arg, "not a non-negative integer");
  return x;
}

void usage() {
  std::cout
      << "usage: swim-sim --nodes N --loss P --duration SECONDS --seed S --kill K\n"
         "                [--profile lan|wan|local] [--json] [--compress] [--stagger-ms MS]\n";
}

}  // namespace

int main(int argc, char** argv) {
  mesh::sim::RunOptions o;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) bad(a, "missing value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a == "--nodes") {
      const auto n = parse_uint(a, value());
      if (n < 1 || n > 100000) bad(a, "must be 1..100000");
      o.nodes = static_cast<std::size_t>(n);
    } else if (a == "--loss") {
      o.loss = parse_double(a, value());
      if (o.loss < 0 || o.loss >= 1) bad(a, "must be in [0, 1)");
    } else if (a == "--duration") {
      o.duration_s = parse_double(a, value());
      if (o.duration_s <= 0 || o.duration_s > 1e7) bad(a, "must be > 0 seconds");
    } else if (a == "--seed") {
      o.seed = parse_uint(a, value());
    } else if (a == "--kill") {
      o.kill = static_cast<std::size_t>(parse_uint(a, value()));
    } else if (a == "--profile") {
      const char* v = value();
      auto p = mesh::swim::parse_profile(v);
      if (!p) bad(a, "must be lan, wan or local");
      o.profile = *p;
    } else if (a == "--stagger-ms") {
      o.stagger_ms = parse_double(a, value());
      if (o.stagger_ms < 0) bad(a, "must not be negative");
    } else if (a == "--json") {
      json = true;
    } else if (a == "--compress") {
      o.compress = true;
    } else {
      bad(a, "unknown option");
    }
  }
  if (o.nodes > 3 && o.kill > o.nodes - 3)
    bad("--kill", "at most nodes - 3 (seeds are not killed)");
  if (o.nodes <= 3 && o.kill > 0) bad("--kill", "no node to kill: nodes 0..2 are the seeds");

  try {
    const auto r = mesh::sim::run_simulation(o);
    if (json) {
      std::cout << mesh::sim::to_json(r) << "\n";
    } else {
      std::cout << mesh::sim::to_table(r);
    }
  } catch (const std::exception& e) {
    std::cerr << "swim-sim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
