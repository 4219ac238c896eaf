// config: a node's configuration sources as mesh-node reads them at start:
// a YAML file, environment variables and command-line flags.
//
//   [u16 len][YAML text]                       written to a scratch file
//                                              and named by --config
//   [n][n x ([variable index][u16 len][value])] the environment
//   [n][n x ([u16 len][argument])]             the command line
//
// Bad configuration must come out as a ConfigError (the one exception
// mesh-node catches and prints); anything else escaping is a finding. A
// configuration that loads must also print (--check-config).
//
// JC_CONFIG and --config are not taken from the input, nor the files read
// while the configuration loads: the admin token file (admin_token_file,
// JC_ADMIN_TOKEN_FILE, --admin-token-file), the gossip key file and the node
// certificate file (likewise): naming a FIFO or a terminal would make the
// harness wait for a writer, not the code fail.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_input.hpp"
#include "mesh/node_config.hpp"

using mesh::fuzz::as_text;
using mesh::fuzz::FuzzInput;

namespace {

const std::string& scratch_file() {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("mesh-config-fuzz-" + std::to_string(getpid()) + ".yaml"))
          .string();
  return path;
}

void write_file(const std::string& path, std::string_view text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzInput in(data, size);
  std::vector<std::string> args;
  mesh::Environment env;

  const auto yaml = in.sized(8192);
  // A YAML file could also spell the key with escapes ("\x61dmin_..."): files
  // with backslashes are left out as well.
  const std::string_view yaml_text = as_text(yaml);
  if (!yaml.empty() && yaml_text.find("admin_token_file") == std::string_view::npos &&
      yaml_text.find("gossip_key_file") == std::string_view::npos &&
      yaml_text.find("node_cert_file") == std::string_view::npos &&
      yaml_text.find('\\') == std::string_view::npos) {
    write_file(scratch_file(), as_text(yaml));
    args = {"--config", scratch_file()};
  }

  const auto& names = mesh::config_environment_variables();
  for (int n = in.byte() % 8; n > 0; --n) {
    const std::string& name = names[in.byte() % names.size()];
    const std::string value(as_text(in.sized(256)));
    if (name != "JC_CONFIG" && name != "JC_ADMIN_TOKEN_FILE" && name != "JC_GOSSIP_KEY_FILE" &&
        name != "JC_NODE_CERT_FILE") {
      env[name] = value;
    }
  }

  for (int n = in.byte() % 12; n > 0; --n) {
    std::string arg(as_text(in.sized(256)));
    if (arg.rfind("--config", 0) == 0 || arg.rfind("--admin-token-file", 0) == 0 ||
        arg.rfind("--gossip-key-file", 0) == 0 || arg.rfind("--node-cert-file", 0) == 0) {
      continue;
    }
    args.push_back(std::move(arg));
  }

  try {
    const mesh::NodeConfig c = mesh::load_node_config(args, env);
    (void)mesh::to_json_string(c);
  } catch (const mesh::ConfigError&) {
    // Refused with a message: what bad configuration should do.
  }
  return 0;
}
