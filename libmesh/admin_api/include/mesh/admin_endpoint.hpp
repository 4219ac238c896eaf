// AdminEndpoint: a Mesh's admin API (mesh/mesh_admin.hpp) served on a
// thread of its own, at the node's admin_host:admin_port (NodeConfig). It
// is how a program turns its admin endpoint on:
//
//   mesh::Mesh mesh(config);
//   mesh.add<MyAgent>();
//   mesh::AdminEndpoint admin(mesh);   // binds now: a taken port throws here
//   mesh.start();
//   admin.start();
//   mesh.run_forever();
//   admin.stop();
//
// mesh-node and mesh-agents run exactly this, so `meshctl members`,
// `meshctl peers`, send, request and GET /metrics work against either.
// Beyond loopback, set the admin token (mesh/mesh_admin.hpp,
// "Authentication"): without one the endpoint refuses every POST there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mesh/admin_server.hpp"
#include "mesh/mesh.hpp"

namespace mesh {

class MeshAdmin;

class AdminEndpoint {
 public:
  // Binds mesh.config().admin_host:admin_port and registers the admin
  // API; serves nothing until start(). Throws std::runtime_error (one line:
  // "admin endpoint 127.0.0.1:9946: cannot bind (...)") if it cannot bind.
  // The Mesh must outlive this object.
  explicit AdminEndpoint(Mesh& mesh, AdminServerOptions options = {});
  // stop().
  ~AdminEndpoint();
  AdminEndpoint(const AdminEndpoint&) = delete;
  AdminEndpoint& operator=(const AdminEndpoint&) = delete;

  // The server, for a program's own routes: register them before start().
  AdminServer& server();
  MeshAdmin& api();

  // Starts serving on the endpoint's thread. Call once.
  void start();
  // Closes the listener and every connection, waits for the thread.
  // Idempotent; any thread but the endpoint's own.
  void stop();
  // /healthz answers 503 {"status":"leaving"} from now on (MeshAdmin).
  void set_leaving();

  std::uint16_t port() const;    // the bound port
  std::string endpoint() const;  // "127.0.0.1:9946"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh
