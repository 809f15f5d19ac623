// CurveZMQ security for the ZeroMQ transport (docs/protocol.md §14).
//
// A home that turns security on is a CURVE server: it has a keypair, and a
// ZAP handler admits only the client public keys on its allow-list. A peer
// that dials it is a CURVE client: it has its own keypair and must know the
// home's public key. Everything is off by default (net_options::curve_server
// and net_options::curve_client are empty), and then nothing changes on the
// wire or in the code path.
//
// Keys are 32-byte Curve25519 keys written as 40 characters of Z85
// (ZeroMQ RFC 32), the form libzmq takes. Key files hold one key on one line
// (see "Key files" below); make a keypair with curve::write_keypair("name"),
// which writes name.key (secret, mode 0600) and name.pub.
//
// Environment (read by curve::server_from_env, client_from_env, apply_env):
//   ZCHAN_CURVE_SECRET_KEY       this process's secret key, Z85 (home or peer)
//   ZCHAN_CURVE_SECRET_KEY_FILE  or a file holding it (must be mode 0600 or stricter)
//   ZCHAN_CURVE_SERVER_KEY       dial: the home's public key, Z85; set = secure dial
//   ZCHAN_CURVE_SERVER_KEY_FILE  or a file holding it
//   ZCHAN_CURVE_ALLOW_FILE       server: the allow-list file; set = secure server
//
// Secret key files: load_secret_key refuses (throws key_error) a file that
// its group or others may read or write, as ssh does with its private keys:
// a secret key others can read is no longer secret, and a warning is easily
// lost in a service's log. `chmod 600 file` fixes it.
//
// Thread safety: key, keypair, allow_list, server_options and client_options
// are values: distinct objects may be used from any threads, one object from
// several threads only for reading. The free functions are safe from any
// thread (apply_env and the *_from_env functions read the environment, which
// must not be modified concurrently).
#pragma once

#include <compare>
#include <cstddef>
#include <initializer_list>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>

namespace zchan {

struct net_options;

namespace curve {

/// Thrown for malformed key text, an unreadable or malformed key file or
/// allow-list, a secret key file others may read, or inconsistent settings
/// in the environment. The message names the file, line or variable.
class key_error : public std::runtime_error {
public:
    explicit key_error(const std::string& what) : std::runtime_error(what) {}
};

/// Characters in a Z85-encoded key.
inline constexpr std::size_t key_chars = 40;

/// A Curve25519 key (public or secret) as 40 characters of Z85.
///
/// Example:
///   zchan::curve::key k("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
class key {
public:
    /// The empty key (no key set).
    key() = default;
    /// Validates `z85`: exactly 40 Z85 characters that decode to 32 bytes.
    /// Throws: key_error, saying what is wrong (never echoing the text, which
    /// may be a secret).
    explicit key(std::string_view z85);

    /// A key from its 32 raw bytes. Throws: key_error if `bytes` is not 32 long.
    [[nodiscard]] static key from_bytes(std::string_view bytes);

    [[nodiscard]] const std::string& z85() const noexcept { return z85_; }
    [[nodiscard]] bool empty() const noexcept { return z85_.empty(); }

    friend bool operator==(const key&, const key&) = default;
    // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=>
    friend auto operator<=>(const key&, const key&) = default;

private:
    std::string z85_;
};

/// A public key and the secret key it belongs to.
struct keypair {
    key public_key;
    key secret_key;
};

/// A fresh random keypair (zmq_curve_keypair).
/// Throws: key_error if libzmq was built without CURVE support.
[[nodiscard]] keypair generate();

/// The public key that belongs to `secret` (zmq_curve_public).
/// Throws: key_error if `secret` is empty or CURVE is unsupported.
[[nodiscard]] key public_key_of(const key& secret);

// ---- Key files --------------------------------------------------------------------------
//
// Format, for key files and allow-lists alike: one key per line; blank lines
// and lines starting with '#' are skipped (no key starts with '#': it is a
// Z85 character, but one too large to begin an encoded group); after a key,
// whitespace and a '#' comment may follow. Leading and trailing blanks and a
// CR before the newline are ignored. A key file holds exactly one key.
// Errors name the file and the line.

/// Reads a public key file. Throws: key_error.
[[nodiscard]] key load_key(const std::string& path);
/// Reads a secret key file; refuses one its group or others may access (see the top).
/// Throws: key_error.
[[nodiscard]] key load_secret_key(const std::string& path);
/// Writes `k` to `path` (created or replaced) as one line, mode 0644.
/// Throws: key_error.
void save_key(const std::string& path, const key& k);
/// Writes `k` to `path` (created or replaced) as one line, mode 0600 (also
/// when the file existed with a looser mode). Throws: key_error.
void save_secret_key(const std::string& path, const key& k);

/// Generates a keypair and writes `<prefix>.key` (secret, 0600) and
/// `<prefix>.pub` (public, 0644): what `zchan keygen <prefix>` does. Refuses
/// to overwrite either file. Returns the pair.
/// Throws: key_error (a file exists, or cannot be written).
///
/// Example:
///   auto kp = zchan::curve::write_keypair("/etc/myapp/home");  // home.key, home.pub
keypair write_keypair(const std::string& path_prefix);

/// Reads `<prefix>.key` (as load_secret_key) and `<prefix>.pub`, and checks
/// that they belong together. Throws: key_error.
[[nodiscard]] keypair load_keypair(const std::string& path_prefix);

// ---- Allow-list -----------------------------------------------------------------------

/// The client public keys a CURVE home admits. An empty list admits nobody.
class allow_list {
public:
    allow_list() = default;
    allow_list(std::initializer_list<key> keys);

    /// Reads a file in the format above (any number of keys, possibly none).
    /// Throws: key_error.
    [[nodiscard]] static allow_list load(const std::string& path);

    /// Adds a key; empty keys are ignored.
    void add(const key& k);
    [[nodiscard]] bool contains(const key& k) const { return keys_.count(k) != 0; }
    [[nodiscard]] std::size_t size() const noexcept { return keys_.size(); }
    [[nodiscard]] bool empty() const noexcept { return keys_.empty(); }
    [[nodiscard]] const std::set<key>& keys() const noexcept { return keys_; }

private:
    std::set<key> keys_;
};

// ---- Options ------------------------------------------------------------------------

/// A home's side (net_options::curve_server): its secret key (its public key
/// is derived from it; peers need that one) and the clients it admits.
struct server_options {
    key secret_key;
    allow_list allowed_clients;
};

/// A peer's side (net_options::curve_client): its secret key (the public key
/// the home's allow-list must contain is derived from it) and the home's
/// public key.
struct client_options {
    key secret_key;
    key server_key;
};

// ---- Environment --------------------------------------------------------------------

/// Reads a Z85 key from environment variable `name`; nullopt if unset or empty.
/// Throws: key_error if it is set but malformed (the message names the variable).
[[nodiscard]] std::optional<key> key_from_env(const char* name);

/// The server side from the environment: nullopt if ZCHAN_CURVE_ALLOW_FILE is
/// unset; otherwise the secret key from ZCHAN_CURVE_SECRET_KEY or
/// ZCHAN_CURVE_SECRET_KEY_FILE (one is required) and that allow-list.
/// Throws: key_error.
[[nodiscard]] std::optional<server_options> server_from_env();

/// The client side from the environment: nullopt if neither
/// ZCHAN_CURVE_SERVER_KEY nor ZCHAN_CURVE_SERVER_KEY_FILE is set; otherwise
/// that key and the secret key from ZCHAN_CURVE_SECRET_KEY(_FILE) (required).
/// Throws: key_error.
[[nodiscard]] std::optional<client_options> client_from_env();

/// Sets opts.curve_server and opts.curve_client from the environment where
/// the variables are present (leaves them untouched otherwise); returns opts.
/// Throws: key_error.
///
/// Example:
///   zchan::net_options opts;
///   zchan::curve::apply_env(opts);  // secure if the variables say so
///   zchan::server srv("tcp://*:5555", opts);
net_options& apply_env(net_options& opts);

}  // namespace curve
}  // namespace zchan
