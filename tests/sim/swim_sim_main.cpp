// swim-sim: runs a simulated SWIM cluster and prints what it measured.
//
//   swim-sim --nodes N --loss P --duration SECONDS --seed S --kill K
//            [--profile lan|wan|local] [--json] [--compress] [--stagger-ms MS]
//            [--queue-bound N]
//
// N nodes join through seeds 0, 1, 2 and converge; then the cluster runs for
// SECONDS of virtual time at packet loss P, and K random non-seed nodes are
// crashed half way. Exit code 0 when the run completed, whatever the
// figures; 2 on a bad argument (one line on stderr naming it).
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>

#include "mesh/cli.hpp"
#include "sim_run.hpp"

int main(int argc, char** argv) {
  mesh::sim::RunOptions o;
  bool json = false;
  std::size_t nodes = o.nodes;
  std::uint64_t seed = o.seed;
  std::size_t kill = o.kill;
  std::string profile = "lan";
  std::string probe_order = "aligned";
  CLI::App app(
      "Runs a simulated SWIM cluster and prints what it measured (docs/simulator.md):\n"
      "N nodes join through seeds 0, 1, 2 and converge; then the cluster runs for\n"
      "SECONDS of virtual time at packet loss P, and K random non-seed nodes are\n"
      "crashed half way.");
  mesh::cli::setup(app, "swim-sim");
  app.add_option("--nodes", nodes, "cluster size N")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(1, 100000));
  app.add_option("--loss", o.loss, "packet loss P, in [0, 1)")
      ->type_name("P")
      ->transform(mesh::cli::number(0, 0.999999));
  app.add_option("--duration", o.duration_s, "virtual seconds after convergence")
      ->type_name("SECONDS")
      ->transform(mesh::cli::number(0.001, 1e7, "seconds"));
  app.add_option("--seed", seed, "seed of the run (printed; the same seed replays it)")
      ->type_name("S")
      ->transform(mesh::cli::whole_number(0, UINT64_MAX));
  app.add_option("--kill", kill, "non-seed nodes to crash half way")
      ->type_name("K")
      ->transform(mesh::cli::whole_number(0, 100000));
  app.add_option("--profile", profile, "timing profile")
      ->type_name("lan|wan|local")
      ->check(CLI::IsMember({"lan", "wan", "local"}));
  app.add_option("--stagger-ms", o.stagger_ms, "milliseconds between two joins")
      ->type_name("MS")
      ->transform(mesh::cli::number(0, 1e6));
  app.add_option("--queue-bound", o.queue_bound,
                 "broadcast queue bound per node (0: the core's default)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(0, 100000000));
  app.add_option("--probe-order", probe_order,
                 "aligned (a rotation every node shares) or shuffled (memberlist's)")
      ->type_name("aligned|shuffled")
      ->check(CLI::IsMember({"aligned", "shuffled"}));
  app.add_flag("--json", json, "print one JSON object instead of a table");
  app.add_flag("--compress", o.compress, "compress streams (LZW) as memberlist does");
  try {
    if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
    o.nodes = nodes;
    o.seed = seed;
    o.kill = kill;
    o.profile = *mesh::swim::parse_profile(profile);
    o.aligned_probes = probe_order == "aligned";
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
