// tests/support/tcp_proxy.hpp: forwards both ways, pause holds bytes back
// without closing anything, resume delivers what queued, kill resets both
// sides, drop_new refuses new connections; and a zchan channel dialed
// through it works and reports the cuts as the fault tests expect.
#include "tcp_proxy.hpp"

#include <chrono>
#include <string>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::deadline_after;
using zchan_test::generous;
using zchan_test::tcp_proxy;

/// A listening socket on 127.0.0.1 (kernel-chosen port), closed at scope exit.
struct listener {
    int fd = -1;
    std::uint16_t port = 0;
    listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(fd, 8), 0);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~listener() { ::close(fd); }
};

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
}

/// Reads up to `n` bytes, waiting at most `ms`; "" on timeout; "<eof>"/"<err>" at the end.
std::string read_some(int fd, int ms, std::size_t n = 64) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return "";
    std::string s(n, '\0');
    const ssize_t r = ::recv(fd, s.data(), n, 0);
    if (r == 0) return "<eof>";
    if (r < 0) return "<err>";
    s.resize(static_cast<std::size_t>(r));
    return s;
}

void write_all(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

TEST(TcpProxy, ForwardsBothWays) {
    listener target;
    tcp_proxy proxy("127.0.0.1", target.port);
    const int c = connect_to(proxy.port());
    const int t = ::accept4(target.fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(t, 0);
    write_all(c, "ping");
    EXPECT_EQ(read_some(t, 5000), "ping");
    write_all(t, "pong");
    EXPECT_EQ(read_some(c, 5000), "pong");
    EXPECT_EQ(proxy.open_connections(), 1u);
    // Counted just after the write that delivered the bytes: wait, bounded.
    EXPECT_TRUE(zchan_test::wait_until([&] { return proxy.bytes_forwarded() == 8u; },
                                       deadline_after(generous)));
    ::close(c);
    EXPECT_EQ(read_some(t, 5000), "<eof>");  // a close is forwarded as a close
    ::close(t);
}

TEST(TcpProxy, PauseHoldsBytesBackAndResumeDeliversThem) {
    listener target;
    tcp_proxy proxy("127.0.0.1", target.port);
    const int c = connect_to(proxy.port());
    const int t = ::accept4(target.fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(t, 0);
    proxy.pause();
    write_all(c, "held");
    write_all(t, "back");
    EXPECT_EQ(read_some(t, 100), "");  // negative check: nothing crosses while paused
    EXPECT_EQ(read_some(c, 100), "");
    EXPECT_EQ(proxy.open_connections(), 1u);  // and nothing was closed
    proxy.resume();
    EXPECT_EQ(read_some(t, 5000), "held");
    EXPECT_EQ(read_some(c, 5000), "back");
    ::close(c);
    ::close(t);
}

TEST(TcpProxy, KillResetsBothSidesAndDropNewRefusesNewConnections) {
    listener target;
    tcp_proxy proxy("127.0.0.1", target.port);
    const int c = connect_to(proxy.port());
    const int t = ::accept4(target.fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(t, 0);
    write_all(c, "x");
    EXPECT_EQ(read_some(t, 5000), "x");
    proxy.kill_connections();
    EXPECT_EQ(proxy.open_connections(), 0u);
    const std::string tc = read_some(c, 5000);
    const std::string tt = read_some(t, 5000);
    EXPECT_TRUE(tc == "<err>" || tc == "<eof>") << tc;
    EXPECT_TRUE(tt == "<err>" || tt == "<eof>") << tt;
    ::close(c);
    ::close(t);

    proxy.drop_new(true);
    const int c2 = connect_to(proxy.port());  // the kernel accepts; the proxy resets it
    const std::string r2 = read_some(c2, 5000);
    EXPECT_TRUE(r2 == "<err>" || r2 == "<eof>") << r2;
    EXPECT_EQ(proxy.accepted(), 2u);
    ::close(c2);
    proxy.drop_new(false);
    const int c3 = connect_to(proxy.port());
    const int t3 = ::accept4(target.fd, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(t3, 0);
    write_all(c3, "again");
    EXPECT_EQ(read_some(t3, 5000), "again");
    ::close(c3);
    ::close(t3);
}

zchan::net_options fast() {
    zchan::net_options o;
    o.heartbeat = 100ms;
    o.heartbeat_timeout = 800ms;
    o.connect_timeout = 2000ms;
    return o;
}

TEST(TcpProxy, CarriesAZchanChannelAndAPauseStopsIt) {
    zchan::channel<int> ch(4);
    zchan::server srv("tcp://127.0.0.1:*", fast());
    srv.serve("ch", ch);
    tcp_proxy proxy(srv.endpoint());
    auto remote = zchan::dial<int>(proxy.endpoint(), "ch", fast());
    remote.send(1);
    EXPECT_EQ(*ch.recv(), 1);
    proxy.pause();
    ch.send(2);
    // Paused: the value cannot cross, so the deadline wins.
    EXPECT_EQ(remote.recv_for(150ms).status, zchan::recv_status::timeout);
    proxy.resume();
    auto r = remote.recv_for(generous);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, 2);
}

TEST(TcpProxy, DialThroughAProxyThatDropsNewConnectionsFailsWithConnectError) {
    zchan::channel<int> ch(1);
    zchan::server srv("tcp://127.0.0.1:*", fast());
    srv.serve("ch", ch);
    tcp_proxy proxy(srv.endpoint());
    proxy.drop_new(true);
    auto o = fast();
    o.connect_timeout = 300ms;
    EXPECT_TRUE(zchan_test::throws<zchan::connect_error>(
        [&] { (void)zchan::dial<int>(proxy.endpoint(), "ch", o); }));
    EXPECT_GE(proxy.accepted(), 1u);  // ZeroMQ did try (and retries)
}

}  // namespace
