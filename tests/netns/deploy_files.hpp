// Reading deploy/ the way the container engines would, for the tests that
// prove it: the compose file's services and the StatefulSet's pods become
// NodeSpecs (a command and the exact environment the node would get), so
// that the tests run what the files say instead of a copy made by hand.
//
// Only what deploy/ uses is implemented, and anything else is an error
// rather than silently skipped: a compose `environment` map, `secrets`
// list (files the test supplies, at /run/secrets/<name>) and `depends_on`
// (list or map with conditions; a service's own `healthcheck` is refused,
// the image's is the one the tests run); a Kubernetes
// container's `env` with `value` (with $(VAR) expansion of earlier
// variables, as the kubelet does), `valueFrom.fieldRef` (metadata.name,
// metadata.namespace, status.podIP), `valueFrom.secretKeyRef` (from the
// secrets a test supplies; optional ones may be missing) and
// `valueFrom.configMapKeyRef`; and ConfigMap and Secret volumes, written
// out under a directory of the test's choosing, with env values that point
// into their mount paths (or /run/secrets) rewritten to match.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mesh::test::deploy {

using Env = std::map<std::string, std::string>;

// deploy/<relative>, in the source tree.
std::string deploy_path(const std::string& relative);
std::string read_text(const std::string& path);

struct NodeSpec {
  std::string name;                  // compose service or pod name
  std::vector<std::string> command;  // program name first ("mesh-node", "mesh-agents")
  Env env;
  // compose depends_on: service -> condition ("service_started",
  // "service_healthy"); empty for pods.
  std::map<std::string, std::string> depends_on;
};

// Every service of a compose file, in file order. The compose secrets a
// service lists are written from `secrets` (name -> content) under
// files_root/<service>/. Throws std::runtime_error on anything it does not
// understand, or a secret not supplied.
std::vector<NodeSpec> compose_nodes(const YAML::Node& compose, const Env& secrets,
                                    const std::string& files_root);

// The documents of a multi-document YAML file.
std::vector<YAML::Node> load_all(const std::string& path);
// The one document of `kind` (and `name`, if given); throws if not exactly one.
YAML::Node find_kind(const std::vector<YAML::Node>& docs, const std::string& kind,
                     const std::string& name = "");

// What the cluster gives one pod.
struct Pod {
  std::string name;       // <statefulset>-<ordinal>
  std::string ip;         // status.podIP
  std::string k8s_namespace;
  std::map<std::pair<std::string, std::string>, std::string> secrets;  // (secret, key) -> value
  std::string files_root;  // ConfigMap and Secret volumes are written under here
};

// The StatefulSet's only container as the node `pod` runs, with its
// ConfigMap and Secret volumes written under pod.files_root.
NodeSpec statefulset_node(const std::vector<YAML::Node>& docs, const YAML::Node& statefulset,
                          const Pod& pod);

// The container's probe of `kind` ("readinessProbe", "livenessProbe"):
// path and port number (a named port resolved through the container's ports).
struct HttpProbe {
  std::string path;
  int port = 0;
};
HttpProbe http_probe(const YAML::Node& statefulset, const std::string& kind);

// The stable DNS name of pod `pod` of the StatefulSet behind `service` in
// `ns`, as cluster DNS serves it.
std::string pod_dns_name(const std::string& pod, const std::string& service, const std::string& ns);

// A Dockerfile as its instructions: continuation lines joined, comments
// dropped, keyword upper-cased, ARG defaults substituted for ${NAME}.
struct Instruction {
  std::string keyword;
  std::string args;
};
std::vector<Instruction> dockerfile_instructions(const std::string& text);

// The command of a Dockerfile's HEALTHCHECK as argv: the exec form's JSON
// list as it is, the shell form as /bin/sh -c "<command>". Throws if there
// is no HEALTHCHECK, or it is NONE.
std::vector<std::string> healthcheck_command(const std::vector<Instruction>& instructions);

// KEY=value lines of an EnvironmentFile (comments and blank lines skipped).
Env environment_file(const std::string& text);

// `mesh-node --check-config` with exactly `env`: exit code, stdout, stderr.
struct CheckResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CheckResult check_config(const Env& env);

}  // namespace mesh::test::deploy
