// Encryption and hostile input on real sockets.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <random>

#include "harness.hpp"

namespace mesh::swim::test {
namespace {

namespace ip = asio::ip;

NetOptions with_key(const Bytes& key) {
  NetOptions n = loopback();
  n.keyring = Keyring({key});
  return n;
}

// E1 and E2 share a key and form a cluster. E3 has another key and E4 none:
// neither can join, and nothing of theirs gets into E1's view; E1 counts
// their traffic as undecryptable.
TEST(DriverEncryption, SameKeyJoinsOthersCannot) {
  const Bytes key(32, 0x42);
  const Bytes other(16, 0x17);
  TestNode e1(local_config("e1"), with_key(key), 41, {{"secure", "yes"}});
  TestNode e2(local_config("e2"), with_key(key), 42);
  std::atomic<bool> joined{false};
  e2.m->join({seed_of(*e1.m)}, [&] { joined = true; });
  ASSERT_TRUE(eventually([&] {
    return joined && sees(*e1.m, "e2", MemberState::Alive) && sees(*e2.m, "e1", MemberState::Alive);
  }));

  TestNode e3(local_config("e3"), with_key(other), 43);
  TestNode e4(local_config("e4"), loopback(), 44);
  std::atomic<bool> intruder_joined{false};
  e3.m->join({seed_of(*e1.m)}, [&] { intruder_joined = true; });
  e4.m->join({seed_of(*e1.m)}, [&] { intruder_joined = true; });
  // Each intruder's first attempt fails at E1 (a stream it cannot decrypt);
  // then E3 and E4 keep retrying with backoff.
  ASSERT_TRUE(eventually([&] {
    const DriverStats d = e1.m->driver_stats();
    return d.streams_dropped_decrypt >= 2 && e3.m->driver_stats().join_attempts >= 2 &&
           e4.m->driver_stats().join_attempts >= 2;
  }));
  // Their UDP (E3 pings nobody, so send some ourselves the way E4 would).
  {
    asio::io_context io;
    ip::udp::socket u(io, ip::udp::endpoint(ip::udp::v4(), 0));
    const ip::udp::endpoint to(ip::make_address("127.0.0.1"), e1.m->bound_port());
    const Bytes plain_ping = {0x00, 0x80};  // [ping][{}]: plaintext, refused
    for (int i = 0; i < 5; ++i) u.send_to(asio::buffer(plain_ping), to);
    const Bytes foreign = Keyring({other}).encrypt(plain_ping, {});
    for (int i = 0; i < 5; ++i) u.send_to(asio::buffer(foreign), to);
  }
  ASSERT_TRUE(eventually([&] { return e1.m->driver_stats().packets_dropped_decrypt >= 10; }));
  // Encrypted stream frames that lie: a length over the limit, a body that
  // does not authenticate, a frame cut short by the sender.
  {
    asio::io_context io;
    const ip::tcp::endpoint to(ip::make_address("127.0.0.1"), e1.m->bound_port());
    auto send = [&](const Bytes& b) {
      boost::system::error_code ec;
      ip::tcp::socket sock(io);
      sock.connect(to, ec);
      if (ec) return;
      asio::write(sock, asio::buffer(b), ec);
      sock.shutdown(ip::tcp::socket::shutdown_send, ec);
      Bytes sink(64);
      sock.read_some(asio::buffer(sink), ec);
    };
    send(Bytes{10, 0x7f, 0xff, 0xff, 0xff});            // 2 GiB promised
    Bytes forged = {10, 0, 0, 0, 40};
    forged.resize(45, 0x5a);                             // right length, no valid tag
    send(forged);
    send(Bytes{10, 0, 0, 1, 0, 1, 2, 3});                // 256 promised, 3 sent
  }
  ASSERT_TRUE(eventually([&] {
    const DriverStats d = e1.m->driver_stats();
    return d.streams_dropped_oversize >= 1 && d.streams_dropped_decrypt >= 3 &&
           d.streams_dropped_malformed >= 1;
  }));
  EXPECT_FALSE(intruder_joined.load());
  for (const auto& i : e1.m->members()) EXPECT_TRUE(i.member.name == "e1" || i.member.name == "e2");
  for (const auto& i : e2.m->members()) EXPECT_TRUE(i.member.name == "e1" || i.member.name == "e2");
  EXPECT_EQ(e3.m->members().size(), 1u);
  EXPECT_EQ(e4.m->members().size(), 1u);
  // The encrypted pair still works: E2 leaves and E1 sees it.
  EXPECT_TRUE(e2.m->leave(5s));
  EXPECT_TRUE(eventually([&] { return sees(*e1.m, "e2", MemberState::Left); }));
}

// Key rotation as memberlist's keyring allows it: A encrypts with the new
// key, B still with the old one, each has both installed. Every key is
// tried on receipt, so the two form a cluster.
TEST(DriverEncryption, EveryInstalledKeyDecrypts) {
  const Bytes k_old(16, 1), k_new(24, 2);
  NetOptions a_net = loopback();
  a_net.keyring = Keyring({k_new, k_old});
  NetOptions b_net = loopback();
  b_net.keyring = Keyring({k_old, k_new});
  TestNode a(local_config("ka"), a_net, 51);
  TestNode b(local_config("kb"), b_net, 52);
  std::atomic<bool> joined{false};
  b.m->join({seed_of(*a.m)}, [&] { joined = true; });
  ASSERT_TRUE(eventually([&] {
    return joined && sees(*a.m, "kb", MemberState::Alive) && sees(*b.m, "ka", MemberState::Alive);
  }));
  EXPECT_EQ(a.m->driver_stats().packets_dropped_decrypt, 0u);
  EXPECT_EQ(b.m->driver_stats().packets_dropped_decrypt, 0u);
}

// Random datagrams and random TCP streams at a live node: all counted and
// dropped, and the node keeps working (a peer stays alive, a newcomer can
// still join).
TEST(DriverGarbage, RandomPacketsAndStreams) {
  Config cfg = local_config("g1");
  cfg.limits.max_stream = 64 * 1024;  // small, so that the size limit is reachable
  NetOptions net = loopback();
  net.max_inbound_streams = 4;
  TestNode g1(cfg, net, 61);
  TestNode g2(local_config("g2"), loopback(), 62);
  g2.m->join({seed_of(*g1.m)});
  ASSERT_TRUE(eventually([&] { return sees(*g1.m, "g2", MemberState::Alive); }));

  std::mt19937_64 rng(12345);
  auto random_bytes = [&](std::size_t n) {
    Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    return b;
  };
  asio::io_context io;
  const ip::address lo = ip::make_address("127.0.0.1");
  const std::uint16_t port = g1.m->bound_port();
  {
    ip::udp::socket u(io, ip::udp::endpoint(ip::udp::v4(), 0));
    for (int i = 0; i < 500; ++i) {
      Bytes b = random_bytes(static_cast<std::size_t>(rng() % 1500));
      // Give some a plausible message type so that the decoders dig deeper.
      if (!b.empty() && i % 3 == 0) b[0] = static_cast<std::uint8_t>(rng() % 14);
      u.send_to(asio::buffer(b), ip::udp::endpoint(lo, port));
      if (i % 50 == 0) std::this_thread::sleep_for(10ms);  // do not overflow the socket buffer
    }
    Bytes big = random_bytes(60000);
    big[0] = 7;  // a compound with nonsense lengths
    u.send_to(asio::buffer(big), ip::udp::endpoint(lo, port));
  }
  auto send_stream = [&](const Bytes& b, bool half_close) {
    boost::system::error_code ec;
    ip::tcp::socket s(io);
    s.connect(ip::tcp::endpoint(lo, port), ec);
    if (ec) return;
    asio::write(s, asio::buffer(b), ec);
    if (half_close) s.shutdown(ip::tcp::socket::shutdown_send, ec);
    Bytes sink(4096);
    s.read_some(asio::buffer(sink), ec);  // until g1 closes (or times out)
  };
  for (int i = 0; i < 30; ++i) {
    Bytes b = random_bytes(1 + static_cast<std::size_t>(rng() % 3000));
    if (i % 2 == 0) b[0] = static_cast<std::uint8_t>(rng() % 14);
    send_stream(b, i % 10 != 0);  // a few are left open: they time out
  }
  // Over the stream limit while still incomplete: a push/pull header that
  // promises 100000 node states, then empty maps until past 64 KiB.
  Bytes huge = {0x06, 0x83, 0xa4, 'J', 'o', 'i', 'n', 0xc2, 0xa5, 'N', 'o', 'd', 'e', 's',
                0xce, 0x00, 0x01, 0x86, 0xa0, 0xac, 'U', 's', 'e', 'r', 'S', 't', 'a', 't',
                'e', 'L', 'e', 'n', 0x00};
  huge.resize(huge.size() + 70 * 1024, 0x80);
  send_stream(huge, false);
  // A stream that ends half-way through a message.
  send_stream(Bytes{0x06, 0x83, 0xa4, 'J', 'o'}, true);

  // The oversized push/pull is refused by whichever check sees it first:
  // the codec (it knows the size a message needs) or the driver's cap.
  ASSERT_TRUE(eventually([&] {
    const DriverStats d = g1.m->driver_stats();
    const NodeStats n = g1.m->node_stats();
    return d.streams_dropped_oversize +
                   n.decode_errors[static_cast<std::size_t>(DecodeError::TooLarge)] >= 1 &&
           d.streams_dropped_malformed >= 1;
  }));
  EXPECT_GT(g1.m->node_stats().decode_errors_total(), 100u);

  // More idle connections than max_inbound_streams: each extra one closes
  // the oldest idle one (none is being answered, so none is refused), the
  // rest time out (tcp_timeout).
  {
    std::vector<std::unique_ptr<ip::tcp::socket>> idle;
    for (int i = 0; i < 8; ++i) {
      auto sock = std::make_unique<ip::tcp::socket>(io);
      boost::system::error_code ec;
      sock->connect(ip::tcp::endpoint(lo, port), ec);
      idle.push_back(std::move(sock));
    }
    EXPECT_TRUE(eventually([&] { return g1.m->driver_stats().streams_evicted >= 1; }));
    EXPECT_TRUE(eventually([&] { return g1.m->driver_stats().streams_timed_out >= 1; }));
    EXPECT_EQ(g1.m->driver_stats().streams_refused_busy, 0u);
  }

  // Still working.
  TestNode g3(local_config("g3"), loopback(), 63);
  g3.m->join({seed_of(*g1.m)});
  EXPECT_TRUE(eventually([&] {
    return sees(*g1.m, "g3", MemberState::Alive) && sees(*g1.m, "g2", MemberState::Alive) &&
           sees(*g3.m, "g2", MemberState::Alive);
  }));
}

}  // namespace
}  // namespace mesh::swim::test
