// AdminEndpoint: an io_context and its thread, an AdminServer on it, and
// MeshAdmin's routes (mesh/admin_endpoint.hpp).
#include "mesh/admin_endpoint.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "mesh/mesh_admin.hpp"

namespace mesh {

namespace asio = boost::asio;

struct AdminEndpoint::Impl {
  Impl(Mesh& mesh, AdminServerOptions options)
      : server(io, mesh.config().admin_host, mesh.config().admin_port, options), api(mesh, server) {}

  // Declared in the order they must be built; destroyed the other way
  // round: the thread is joined (stop) before MeshAdmin and the server go.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  AdminServer server;
  MeshAdmin api;
  std::mutex mu;  // guards thread and stopped
  std::thread thread;
  bool stopped = false;
};

AdminEndpoint::AdminEndpoint(Mesh& mesh, AdminServerOptions options)
    : impl_(std::make_unique<Impl>(mesh, options)) {}

AdminEndpoint::~AdminEndpoint() { stop(); }

AdminServer& AdminEndpoint::server() { return impl_->server; }
MeshAdmin& AdminEndpoint::api() { return impl_->api; }

void AdminEndpoint::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped || impl_->thread.joinable()) throw std::logic_error("AdminEndpoint: start called twice");
  impl_->server.start();
  impl_->thread = std::thread([io = &impl_->io] { io->run(); });
}

void AdminEndpoint::stop() {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  if (!impl_->thread.joinable()) {
    impl_->server.stop();  // never served: nothing runs on the io_context
    return;
  }
  asio::post(impl_->io, [server = &impl_->server] { server->stop(); });
  impl_->work.reset();
  impl_->thread.join();
}

void AdminEndpoint::set_leaving() { impl_->api.set_leaving(); }

std::uint16_t AdminEndpoint::port() const { return impl_->server.port(); }
std::string AdminEndpoint::endpoint() const { return impl_->server.endpoint(); }

}  // namespace mesh
