// CurveZMQ security (docs/protocol.md §14, issue 4 §2) over real sockets: an
// allow-listed client works both ways; an unknown client key, a wrong server
// key, a plaintext client and a CURVE client of a plaintext home are refused
// promptly (access_denied well under connect_timeout), and no value passes
// either way; two secure servers in one process keep their own allow-lists.
// The first cases run the home and the peer on threads of this process (each
// with its own sockets); the last one runs a secure home in a child process
// (this binary re-executed, configured through the ZCHAN_CURVE_* variables).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child_process.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/security.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::clock;
using zchan_test::deadline_after;
using zchan_test::generous;
namespace curve = zchan::curve;

/// A refusal must come well before connect_timeout: that is the point.
constexpr auto connect_timeout = 10s;
constexpr auto prompt = zchan_test::sanitized ? 4s : 2s;

zchan::net_options base() {
    zchan::net_options o;
    o.connect_timeout = connect_timeout;
    o.heartbeat = 100ms;
    o.heartbeat_timeout = 1000ms;
    return o;
}

zchan::net_options secure_server(const curve::keypair& home, curve::allow_list allowed) {
    auto o = base();
    o.curve_server = curve::server_options{home.secret_key, std::move(allowed)};
    return o;
}

zchan::net_options secure_client(const curve::keypair& me, const curve::key& server_key) {
    auto o = base();
    o.curve_client = curve::client_options{me.secret_key, server_key};
    return o;
}

/// What a dial that must be refused produced.
struct refusal {
    bool access_denied = false;  // threw zchan::access_denied with errc::access_denied
    std::string what;
    clock::duration took{};
};

refusal dial_refused(const std::string& ep, const zchan::net_options& opts) {
    refusal r;
    const auto t0 = clock::now();
    try {
        auto ch = zchan::dial<long>(ep, "ch", opts);
        r.what = "(dial succeeded)";
    } catch (const zchan::access_denied& e) {
        r.access_denied = e.code() == zchan::errc::access_denied;
        r.what = e.what();
    } catch (const std::exception& e) {
        r.what = std::string("(other exception) ") + e.what();
    }
    r.took = clock::now() - t0;
    return r;
}

/// The home side of the "nothing passed" check: the value put in before the
/// refused dial is still there and alone, and no session was opened.
void expect_home_untouched(const zchan::channel<long>& home, const zchan::server& srv) {
    EXPECT_EQ(srv.sessions(), 0u);
    EXPECT_EQ(srv.malformed_frames(), 0u);
    EXPECT_EQ(home.len(), 1u);
    auto v = home.try_recv();
    EXPECT_EQ(v.status, zchan::recv_status::ok);
    EXPECT_EQ(v.value, std::optional<long>(7));
    EXPECT_EQ(home.try_recv().status, zchan::recv_status::empty);
}

class NetSecurity : public ::testing::TestWithParam<std::string> {
protected:
    std::string bind_endpoint() const {
        static int n = 0;
        if (GetParam() == "ipc") {
            return "ipc:///tmp/zchan-sec-test-" + std::to_string(::getpid()) + "-" +
                   std::to_string(++n);
        }
        return "tcp://127.0.0.1:*";
    }

    const curve::keypair home_ = curve::generate();
    const curve::keypair alice_ = curve::generate();    // on the allow-list
    const curve::keypair mallory_ = curve::generate();  // not on it
};

TEST_P(NetSecurity, AllowedClientSendsAndReceivesBothWays) {
    zchan::channel<long> home(4);
    zchan::server srv(bind_endpoint(), secure_server(home_, {alice_.public_key}));
    srv.serve("ch", home);
    EXPECT_TRUE(srv.secure());
    auto remote = zchan::dial<long>(srv.endpoint(), "ch", secure_client(alice_, home_.public_key));
    remote.send(1);
    remote.send(2);
    EXPECT_EQ(home.recv(), std::optional<long>(1));
    EXPECT_EQ(home.recv(), std::optional<long>(2));
    home.send(3);
    EXPECT_EQ(remote.recv(), std::optional<long>(3));
    remote.close();
    EXPECT_EQ(home.recv(), std::nullopt);
    EXPECT_EQ(srv.rejected_peers(), 0u);
    EXPECT_EQ(srv.sessions(), 1u);
}

TEST_P(NetSecurity, UnknownClientKeyIsRefusedPromptlyAndNothingPasses) {
    zchan::channel<long> home(4);
    home.send(7);
    zchan::server srv(bind_endpoint(), secure_server(home_, {alice_.public_key}));
    srv.serve("ch", home);
    const auto r = dial_refused(srv.endpoint(), secure_client(mallory_, home_.public_key));
    EXPECT_TRUE(r.access_denied) << r.what;
    EXPECT_NE(r.what.find("allow-list"), std::string::npos) << r.what;
    EXPECT_LT(r.took, prompt);
    EXPECT_TRUE(zchan_test::wait_until([&] { return srv.rejected_peers() >= 1; },
                                       deadline_after(generous)));
    expect_home_untouched(home, srv);
}

TEST_P(NetSecurity, WrongServerKeyIsRefusedPromptlyAndNothingPasses) {
    zchan::channel<long> home(4);
    home.send(7);
    zchan::server srv(bind_endpoint(), secure_server(home_, {alice_.public_key}));
    srv.serve("ch", home);
    const auto impostor = curve::generate().public_key;  // alice believes this is the home
    const auto r = dial_refused(srv.endpoint(), secure_client(alice_, impostor));
    EXPECT_TRUE(r.access_denied) << r.what;
    EXPECT_NE(r.what.find("server key"), std::string::npos) << r.what;
    EXPECT_LT(r.took, prompt);
    EXPECT_TRUE(zchan_test::wait_until([&] { return srv.rejected_peers() >= 1; },
                                       deadline_after(generous)));
    expect_home_untouched(home, srv);
}

TEST_P(NetSecurity, PlaintextClientIsRefusedPromptlyAndNothingPasses) {
    zchan::channel<long> home(4);
    home.send(7);
    zchan::server srv(bind_endpoint(), secure_server(home_, {alice_.public_key}));
    srv.serve("ch", home);
    const auto r = dial_refused(srv.endpoint(), base());
    EXPECT_TRUE(r.access_denied) << r.what;
    EXPECT_NE(r.what.find("require"), std::string::npos)
        << r.what;  // "requires CURVE" or "require CURVE?"
    EXPECT_LT(r.took, prompt);
    EXPECT_TRUE(zchan_test::wait_until([&] { return srv.rejected_peers() >= 1; },
                                       deadline_after(generous)));
    expect_home_untouched(home, srv);
}

TEST_P(NetSecurity, SecureClientOfAPlaintextHomeFailsPromptlyAndNothingPasses) {
    zchan::channel<long> home(4);
    home.send(7);
    zchan::server srv(bind_endpoint(), base());
    srv.serve("ch", home);
    EXPECT_FALSE(srv.secure());
    const auto r = dial_refused(srv.endpoint(), secure_client(alice_, home_.public_key));
    EXPECT_TRUE(r.access_denied) << r.what;
    // libzmq reports a mechanism mismatch, or (ipc, racing it) only that the
    // home closed the connection: either way the message says the handshake failed.
    EXPECT_NE(r.what.find("handshake failed"), std::string::npos) << r.what;
    EXPECT_LT(r.took, prompt);
    EXPECT_EQ(srv.rejected_peers(), 0u);  // a plaintext home does not watch handshakes
    expect_home_untouched(home, srv);
}

TEST_P(NetSecurity, TwoSecureServersInOneProcessKeepTheirOwnAllowLists) {
    const auto home_b = curve::generate();
    zchan::channel<long> a(4);
    zchan::channel<long> b(4);
    zchan::server srv_a(bind_endpoint(), secure_server(home_, {alice_.public_key}));
    zchan::server srv_b(bind_endpoint(), secure_server(home_b, {mallory_.public_key}));
    srv_a.serve("ch", a);
    srv_b.serve("ch", b);
    auto alice_a =
        zchan::dial<long>(srv_a.endpoint(), "ch", secure_client(alice_, home_.public_key));
    auto mallory_b =
        zchan::dial<long>(srv_b.endpoint(), "ch", secure_client(mallory_, home_b.public_key));
    alice_a.send(1);
    mallory_b.send(2);
    EXPECT_EQ(a.recv(), std::optional<long>(1));
    EXPECT_EQ(b.recv(), std::optional<long>(2));
    const auto r1 = dial_refused(srv_a.endpoint(), secure_client(mallory_, home_.public_key));
    EXPECT_TRUE(r1.access_denied) << r1.what;
    const auto r2 = dial_refused(srv_b.endpoint(), secure_client(alice_, home_b.public_key));
    EXPECT_TRUE(r2.access_denied) << r2.what;
    EXPECT_LT(r1.took, prompt);
    EXPECT_LT(r2.took, prompt);
    EXPECT_TRUE(zchan_test::wait_until(
        [&] { return srv_a.rejected_peers() == 1 && srv_b.rejected_peers() == 1; },
        deadline_after(generous)));
    EXPECT_EQ(a.len(), 0u);
    EXPECT_EQ(b.len(), 0u);
}

TEST_P(NetSecurity, ServersComeAndGoWhileOthersStaySecure) {
    // Each server registers and removes its own ZAP domain with the one
    // handler: a refusal must still be a refusal for the next server (libzmq
    // would admit everyone if no handler were bound).
    for (int round = 0; round < 3; ++round) {
        zchan::channel<long> home(1);
        zchan::server srv(bind_endpoint(), secure_server(home_, {alice_.public_key}));
        srv.serve("ch", home);
        auto ok = zchan::dial<long>(srv.endpoint(), "ch", secure_client(alice_, home_.public_key));
        ok.send(round);
        EXPECT_EQ(home.recv(), std::optional<long>(round));
        const auto r = dial_refused(srv.endpoint(), secure_client(mallory_, home_.public_key));
        EXPECT_TRUE(r.access_denied) << "round " << round << ": " << r.what;
    }
}

INSTANTIATE_TEST_SUITE_P(Transports, NetSecurity, ::testing::Values("tcp", "ipc"));

// ---- a secure home in another process ------------------------------------------------------

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

/// Child role: a secure home configured only through the environment (set
/// here, before any thread exists, from argv). It serves "out", holding 7,
/// and "in", whose values it prints; once "in" is closed and drained it
/// waits until it has counted `rejections` refused peers, and reports how
/// many values "out" still holds.
int secure_home_main(const std::string& secret_file, const std::string& allow_file,
                     int rejections) {
    try {
        ::setenv("ZCHAN_CURVE_SECRET_KEY_FILE", secret_file.c_str(), 1);
        ::setenv("ZCHAN_CURVE_ALLOW_FILE", allow_file.c_str(), 1);
        auto opts = base();
        curve::apply_env(opts);
        zchan::channel<long> out(4);
        zchan::channel<long> in(4);
        out.send(7);
        zchan::server srv("tcp://127.0.0.1:*", opts);
        srv.serve("out", out);
        srv.serve("in", in);
        say("endpoint " + srv.endpoint());
        for (long v : in) say("got " + std::to_string(v));
        say("left " + std::to_string(out.len()));
        const auto wanted = static_cast<std::uint64_t>(rejections);
        (void)zchan_test::wait_until([&] { return srv.rejected_peers() >= wanted; },
                                     deadline_after(generous));
        say("rejected " + std::to_string(srv.rejected_peers()));
        return 0;
    } catch (const std::exception& e) {
        say(std::string("error ") + e.what());
        return 2;
    }
}

std::string write_file(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
}

TEST(NetSecurityProcess, HomeInAnotherProcessAdmitsOnlyItsAllowList) {
    // The refused dials: an unknown key, and a plaintext dial.
    std::string dir = (std::filesystem::temp_directory_path() / "zchan-sec-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    const auto home = curve::write_keypair(dir + "/home");
    const auto alice = curve::generate();
    const auto mallory = curve::generate();
    const auto allow = write_file(
        dir + "/allow", "# who may dial\n" + alice.public_key.z85() + "  # alice\n", 0644);
    {
        zchan_test::child_process child(
            {"/proc/self/exe", "--secure-home", dir + "/home.key", allow, "2"});
        ASSERT_TRUE(child.spawned());
        const auto ep = child.wait_for_text("endpoint ");
        ASSERT_TRUE(ep.has_value()) << child.output();

        const auto r1 = dial_refused(*ep, secure_client(mallory, home.public_key));
        EXPECT_TRUE(r1.access_denied) << r1.what;
        EXPECT_LT(r1.took, prompt);
        const auto r2 = dial_refused(*ep, base());
        EXPECT_TRUE(r2.access_denied) << r2.what;
        EXPECT_LT(r2.took, prompt);

        auto out = zchan::dial<long>(*ep, "out", secure_client(alice, home.public_key));
        auto in = zchan::dial<long>(*ep, "in", secure_client(alice, home.public_key));
        // The refused dials took nothing: 7 is still there, and only once.
        EXPECT_EQ(out.recv_for(generous).value, std::optional<long>(7));
        EXPECT_EQ(out.try_recv().status, zchan::recv_status::empty);
        in.send(42);
        in.close();
        EXPECT_EQ(child.wait_exit(), std::optional<int>(0)) << child.output();
        std::vector<std::string> got;
        for (const auto& l : child.lines()) {
            if (l.rfind("got ", 0) == 0) got.push_back(l);
        }
        EXPECT_EQ(got, std::vector<std::string>{"got 42"}) << child.output();
        EXPECT_TRUE(child.wait_for_text("left 0").has_value()) << child.output();
        // At least one per refused dial (a plaintext dial may be refused on
        // each of libzmq's reconnection attempts before it gives up).
        const auto rejected = child.wait_for_text("rejected ");
        ASSERT_TRUE(rejected.has_value()) << child.output();
        EXPECT_GE(std::stoi(*rejected), 2) << child.output();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "--secure-home") {
        return secure_home_main(argv[2], argv[3], std::atoi(argv[4]));
    }
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
