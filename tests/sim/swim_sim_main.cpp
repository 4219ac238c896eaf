// swim-sim: runs a simulated SWIM cluster and prints what it measured.
//
//   swim-sim --nodes N --loss P --duration SECONDS --seed S --kill K
//            [--profile lan|wan|local] [--json] [--compress] [--stagger-ms MS]
//
// N nodes join through seeds 0, 1, 2 and converge; then the cluster runs for
// SECONDS of virtual time at packet loss P, and K random non-seed nodes are
// crashed half way. Exit code 0 when the run completed, whatever the
// figures; 2 on a bad argument (one line on stderr naming it).
#include <charconv>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>

#include "mesh/cli.hpp"
#include "sim_run.hpp"

namespace {

// Checks that run before CLI11 converts the text: a number `ok` accepts,
// or a whole number from 0 to `max`.
CLI::Validator check(bool (*ok)(double), std::string what) {
  return CLI::Validator(
      [ok, what](std::string& v) -> std::string {
        try {
          std::size_t used = 0;
          const double d = std::stod(v, &used);
          if (used == v.size() && ok(d)) return "";
        } catch (const std::exception&) {
        }
        return "\"" + v + "\": " + what;
      },
      "", what);
}

CLI::Validator whole(std::uint64_t min, std::uint64_t max, std::string what) {
  return CLI::Validator(
      [=](std::string& v) -> std::string {
        std::uint64_t n = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (!v.empty() && ec == std::errc{} && end == v.data() + v.size() && n >= min && n <= max) {
          return "";
        }
        return "\"" + v + "\": " + what;
      },
      "", what);
}

}  // namespace

int main(int argc, char** argv) {
  mesh::sim::RunOptions o;
  bool json = false;
  std::size_t nodes = o.nodes;
  std::uint64_t seed = o.seed;
  std::size_t kill = o.kill;
  std::string profile = "lan";
  CLI::App app(
      "Runs a simulated SWIM cluster and prints what it measured (docs/simulator.md):\n"
      "N nodes join through seeds 0, 1, 2 and converge; then the cluster runs for\n"
      "SECONDS of virtual time at packet loss P, and K random non-seed nodes are\n"
      "crashed half way.");
  mesh::cli::setup(app, "swim-sim");
  app.add_option("--nodes", nodes, "cluster size N")
      ->type_name("N")
      ->check(whole(1, 100000, "must be a whole number 1..100000"));
  app.add_option("--loss", o.loss, "packet loss P, in [0, 1)")
      ->type_name("P")
      ->check(check([](double d) { return d >= 0 && d < 1; }, "must be in [0, 1)"));
  app.add_option("--duration", o.duration_s, "virtual seconds after convergence")
      ->type_name("SECONDS")
      ->check(check([](double d) { return d > 0 && d <= 1e7; }, "must be > 0 seconds"));
  app.add_option("--seed", seed, "seed of the run (printed; the same seed replays it)")
      ->type_name("S")
      ->check(whole(0, UINT64_MAX, "must be a whole number"));
  app.add_option("--kill", kill, "non-seed nodes to crash half way")
      ->type_name("K")
      ->check(whole(0, 100000, "must be a whole number"));
  app.add_option("--profile", profile, "timing profile")
      ->type_name("lan|wan|local")
      ->check(CLI::IsMember({"lan", "wan", "local"}));
  app.add_option("--stagger-ms", o.stagger_ms, "milliseconds between two joins")
      ->type_name("MS")
      ->check(check([](double d) { return d >= 0; }, "must not be negative"));
  app.add_flag("--json", json, "print one JSON object instead of a table");
  app.add_flag("--compress", o.compress, "compress streams (LZW) as memberlist does");
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
    o.nodes = nodes;
    o.seed = seed;
    o.kill = kill;
    o.profile = *mesh::swim::parse_profile(profile);
    if (o.nodes > 3 && o.kill > o.nodes - 3) {
      throw mesh::UsageError("--kill: at most nodes - 3 (seeds are not killed)");
    }
    if (o.nodes <= 3 && o.kill > 0) {
      throw mesh::UsageError("--kill: no node to kill: nodes 0..2 are the seeds");
    }
  } catch (const mesh::UsageError& e) {
    std::cerr << "swim-sim: " << e.what() << "\n";
    return 2;
  }

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
