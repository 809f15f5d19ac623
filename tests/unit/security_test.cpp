// zchan/security.hpp without sockets: keys, key files, allow-lists and the
// environment. Files go to a fresh directory under /tmp that each test removes.
#include "zchan/security.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "zchan/net.hpp"

namespace {

namespace curve = zchan::curve;
namespace fs = std::filesystem;

/// A fresh directory, removed with everything in it at the end of the test.
class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "zchan-security-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    [[nodiscard]] std::string file(const std::string& name) const {
        return (path_ / name).string();
    }
    /// Writes `text` to `name` with `mode`; returns the path.
    std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
        const auto p = file(name);
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }

private:
    fs::path path_;
};

mode_t mode_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return 0;
    return st.st_mode & 0777;
}

/// The message of the key_error `f` throws ("" if it throws nothing or something else).
template <class F>
std::string key_error_of(F&& f) {
    try {
        f();
    } catch (const curve::key_error& e) {
        return e.what();
    } catch (...) {
        return "(another exception)";
    }
    return "";
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

/// Sets an environment variable for one test and restores it afterwards.
class scoped_env {
public:
    scoped_env(const char* name, const std::string& value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        ::setenv(name, value.c_str(), 1);
    }
    ~scoped_env() {
        if (old_.empty()) {
            ::unsetenv(name_);
        } else {
            ::setenv(name_, old_.c_str(), 1);
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::string old_;
};

TEST(SecurityKey, GeneratedKeysAreZ85AndThePublicKeyDerivesFromTheSecret) {
    const auto kp = curve::generate();
    EXPECT_EQ(kp.public_key.z85().size(), curve::key_chars);
    EXPECT_EQ(kp.secret_key.z85().size(), curve::key_chars);
    EXPECT_NE(kp.public_key, kp.secret_key);
    EXPECT_EQ(curve::public_key_of(kp.secret_key), kp.public_key);
    EXPECT_EQ(curve::key(kp.public_key.z85()), kp.public_key);
    EXPECT_NE(curve::generate().public_key, kp.public_key);
    EXPECT_TRUE(curve::key().empty());
}

TEST(SecurityKey, MalformedKeyTextIsRejectedWithoutEchoingIt) {
    const std::string good = curve::generate().secret_key.z85();
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::key(good.substr(1)); }), "40 characters"));
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::key(good + "x"); }), "40 characters"));
    std::string bad_char = good;
    bad_char[7] = '~';  // not in the Z85 alphabet
    const auto msg = key_error_of([&] { (void)curve::key(bad_char); });
    EXPECT_TRUE(contains(msg, "not Z85")) << msg;
    EXPECT_FALSE(contains(msg, good.substr(0, 7))) << "a secret key must not be echoed";
    // Every character is Z85, but "#####" encodes more than 32 bits.
    EXPECT_TRUE(
        contains(key_error_of([] { (void)curve::key(std::string(40, '#')); }), "out of range"));
    EXPECT_TRUE(contains(key_error_of([] { (void)curve::key(""); }), "40 characters"));
    EXPECT_TRUE(
        contains(key_error_of([] { (void)curve::public_key_of(curve::key()); }), "no secret key"));
}

TEST(SecurityKeyFile, WriteKeypairRoundTripsWithPrivateSecretAndRefusesToOverwrite) {
    temp_dir dir;
    const auto prefix = dir.file("home");
    const auto kp = curve::write_keypair(prefix);
    EXPECT_EQ(mode_of(prefix + ".key"), 0600u);
    EXPECT_EQ(mode_of(prefix + ".pub"), 0644u);
    EXPECT_EQ(curve::load_secret_key(prefix + ".key"), kp.secret_key);
    EXPECT_EQ(curve::load_key(prefix + ".pub"), kp.public_key);
    const auto loaded = curve::load_keypair(prefix);
    EXPECT_EQ(loaded.public_key, kp.public_key);
    EXPECT_EQ(loaded.secret_key, kp.secret_key);
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::write_keypair(prefix); }), "exists"));
    EXPECT_EQ(curve::load_secret_key(prefix + ".key"), kp.secret_key) << "must not be replaced";
}

TEST(SecurityKeyFile, SaveSecretKeyTightensAnExistingLooseFile) {
    temp_dir dir;
    const auto path = dir.write("loose.key", "old\n", 0644);
    const auto k = curve::generate().secret_key;
    curve::save_secret_key(path, k);
    EXPECT_EQ(mode_of(path), 0600u);
    EXPECT_EQ(curve::load_secret_key(path), k);
    const auto pub = dir.file("p.pub");
    curve::save_key(pub, curve::public_key_of(k));
    EXPECT_EQ(curve::load_key(pub), curve::public_key_of(k));
}

TEST(SecurityKeyFile, SecretKeyFileOthersMayReadIsRefused) {
    temp_dir dir;
    const auto kp = curve::generate();
    const auto path = dir.write("open.key", kp.secret_key.z85() + "\n", 0640);
    const auto msg = key_error_of([&] { (void)curve::load_secret_key(path); });
    EXPECT_TRUE(contains(msg, "chmod 600")) << msg;
    // The same file is fine as a public key file (nothing secret is assumed).
    EXPECT_EQ(curve::load_key(path), kp.secret_key);
    ::chmod(path.c_str(), 0600);
    EXPECT_EQ(curve::load_secret_key(path), kp.secret_key);
}

TEST(SecurityKeyFile, MalformedKeyFilesAreRejectedNamingFileAndLine) {
    temp_dir dir;
    const auto a = curve::generate().public_key.z85();
    const auto b = curve::generate().public_key.z85();
    const auto empty = dir.write("empty.pub", "# nothing here\n\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_key(empty); }), "found 0"));
    const auto two = dir.write("two.pub", a + "\n" + b + "\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_key(two); }), "found 2"));
    const auto garbage = dir.write("garbage.pub", "# comment\n\nnot-a-key\n");
    const auto msg = key_error_of([&] { (void)curve::load_key(garbage); });
    EXPECT_TRUE(contains(msg, garbage + ":3")) << msg;
    const auto trailing = dir.write("trailing.pub", a + " extra\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_key(trailing); }), ":1"));
    const auto truncated = dir.write("short.pub", a.substr(0, 39) + "\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_key(truncated); }), "40 characters"));
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_key(dir.file("missing.pub")); }),
                         "cannot open"));
    EXPECT_TRUE(
        contains(key_error_of([&] { (void)curve::load_key(dir.file("")); }), "not a regular file"));
    // A secret/public pair that does not belong together.
    const auto kp = curve::generate();
    dir.write("mixed.key", kp.secret_key.z85() + "\n", 0600);
    dir.write("mixed.pub", b + "\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::load_keypair(dir.file("mixed")); }),
                         "not the public key"));
}

TEST(SecurityAllowList, LoadsKeysSkippingCommentsBlankLinesAndTrailingComments) {
    temp_dir dir;
    const auto a = curve::generate().public_key;
    const auto b = curve::generate().public_key;
    const auto c = curve::generate().public_key;
    const auto path = dir.write("allow", "# clients\n\n  " + a.z85() + "\r\n" + b.z85() +
                                             "   # bob's laptop\n#" + c.z85() + "\n");
    const auto list = curve::allow_list::load(path);
    EXPECT_EQ(list.size(), 2u);
    EXPECT_TRUE(list.contains(a));
    EXPECT_TRUE(list.contains(b));
    EXPECT_FALSE(list.contains(c)) << "a commented-out key is not admitted";
    EXPECT_TRUE(curve::allow_list::load(dir.write("none", "# nobody\n")).empty());
    const auto bad = dir.write("bad", a.z85() + "\nbogus\n");
    EXPECT_TRUE(contains(key_error_of([&] { (void)curve::allow_list::load(bad); }), bad + ":2"));
    curve::allow_list in_code{a, curve::key()};
    EXPECT_EQ(in_code.size(), 1u);
    in_code.add(b);
    EXPECT_TRUE(in_code.contains(b));
}

TEST(SecurityEnv, NothingSetMeansPlaintext) {
    ::unsetenv("ZCHAN_CURVE_SECRET_KEY");
    ::unsetenv("ZCHAN_CURVE_SECRET_KEY_FILE");
    ::unsetenv("ZCHAN_CURVE_SERVER_KEY");
    ::unsetenv("ZCHAN_CURVE_SERVER_KEY_FILE");
    ::unsetenv("ZCHAN_CURVE_ALLOW_FILE");
    EXPECT_FALSE(curve::server_from_env().has_value());
    EXPECT_FALSE(curve::client_from_env().has_value());
    zchan::net_options opts;
    curve::apply_env(opts);
    EXPECT_FALSE(opts.curve_server.has_value());
    EXPECT_FALSE(opts.curve_client.has_value());
}

TEST(SecurityEnv, ClientAndServerSidesComeFromTheDocumentedVariables) {
    temp_dir dir;
    const auto home = curve::generate();
    const auto me = curve::generate();
    const auto allow = dir.write("allow", me.public_key.z85() + "\n");
    const auto secret_file = dir.write("me.key", me.secret_key.z85() + "\n", 0600);
    {
        scoped_env s("ZCHAN_CURVE_SECRET_KEY_FILE", secret_file);
        scoped_env k("ZCHAN_CURVE_SERVER_KEY", home.public_key.z85());
        scoped_env a("ZCHAN_CURVE_ALLOW_FILE", allow);
        zchan::net_options opts;
        curve::apply_env(opts);
        ASSERT_TRUE(opts.curve_client.has_value());
        EXPECT_EQ(opts.curve_client->secret_key, me.secret_key);
        EXPECT_EQ(opts.curve_client->server_key, home.public_key);
        ASSERT_TRUE(opts.curve_server.has_value());
        EXPECT_EQ(opts.curve_server->secret_key, me.secret_key);
        EXPECT_TRUE(opts.curve_server->allowed_clients.contains(me.public_key));
    }
    {
        scoped_env k("ZCHAN_CURVE_SERVER_KEY", "not a key");
        EXPECT_TRUE(contains(key_error_of([] { (void)curve::client_from_env(); }),
                             "ZCHAN_CURVE_SERVER_KEY"));
    }
    {
        scoped_env k("ZCHAN_CURVE_SERVER_KEY", home.public_key.z85());
        EXPECT_TRUE(contains(key_error_of([] { (void)curve::client_from_env(); }),
                             "ZCHAN_CURVE_SECRET_KEY"));
    }
    {
        scoped_env a("ZCHAN_CURVE_ALLOW_FILE", allow);
        scoped_env s("ZCHAN_CURVE_SECRET_KEY", me.secret_key.z85());
        scoped_env f("ZCHAN_CURVE_SECRET_KEY_FILE", secret_file);
        EXPECT_TRUE(contains(key_error_of([] { (void)curve::server_from_env(); }), "not both"));
    }
}

}  // namespace
