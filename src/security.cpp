// Keys, key files, allow-lists and the environment (zchan/security.hpp).
// Nothing here touches a socket: the server and net_link apply the options.
#include "zchan/security.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "zchan/detail/net_link.hpp"

namespace zchan::curve {
namespace {

constexpr std::string_view z85_alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int z85_digit(char c) noexcept {
    const auto at = z85_alphabet.find(c);
    return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

/// Why `text` is not a Z85 key, or nullptr if it is one. Never quotes the
/// text: it may be a secret key.
const char* z85_problem(std::string_view text) noexcept {
    if (text.size() != key_chars) return "a key is 40 characters of Z85";
    for (std::size_t i = 0; i < text.size(); i += 5) {
        std::uint64_t value = 0;
        for (std::size_t j = i; j < i + 5; ++j) {
            const int d = z85_digit(text[j]);
            if (d < 0) return "a character that is not Z85";
            value = value * 85 + static_cast<std::uint64_t>(d);
        }
        if (value > 0xffffffffu) return "a Z85 group out of range (not an encoded key)";
    }
    return nullptr;
}

std::string errno_text(int err) { return std::generic_category().message(err); }

/// Reads a whole (small) file. Throws key_error.
std::string read_file(const std::string& path, struct stat* st_out) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw key_error("zchan: cannot open " + path + ": " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw key_error("zchan: " + path + " is not a regular file");
    }
    if (st_out != nullptr) *st_out = st;
    std::string text;
    std::array<char, 4096> buf{};
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            throw key_error("zchan: cannot read " + path + ": " + errno_text(err));
        }
        if (n == 0) break;
        text.append(buf.data(), static_cast<std::size_t>(n));
        if (text.size() > (1u << 24)) {
            ::close(fd);
            throw key_error("zchan: " + path + " is too large for a key file or allow-list");
        }
    }
    ::close(fd);
    return text;
}

/// The keys of a file in the format of security.hpp ("Key files").
std::vector<key> parse_keys(const std::string& text, const std::string& path) {
    std::vector<key> keys;
    std::size_t line_no = 0;
    std::size_t pos = 0;
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (pos <= text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
        while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
        if (line.empty()) continue;
        std::size_t word_end = 0;
        while (word_end < line.size() && !is_space(line[word_end])) ++word_end;
        const std::string_view word = line.substr(0, word_end);
        std::string_view rest = line.substr(word_end);
        while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
        const char* problem = z85_problem(word);
        if (problem == nullptr && (rest.empty() || rest.front() == '#')) {
            keys.emplace_back(word);
            continue;
        }
        if (line.front() == '#') continue;  // a comment
        const std::string where = path + ":" + std::to_string(line_no);
        if (problem == nullptr) {
            throw key_error("zchan: " + where + ": text after the key (a comment starts with '#')");
        }
        throw key_error("zchan: " + where + ": not a key (" + problem + ")");
    }
    return keys;
}

key load_single(const std::string& path, const std::string& text) {
    auto keys = parse_keys(text, path);
    if (keys.size() != 1) {
        throw key_error("zchan: " + path + ": a key file holds exactly one key, found " +
                        std::to_string(keys.size()));
    }
    return keys.front();
}

/// Writes `text` to `path` with `mode`. exclusive: fail if it exists.
void write_file(const std::string& path, const std::string& text, mode_t mode, bool exclusive) {
    const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC);
    const int fd = ::open(path.c_str(), flags, mode);
    if (fd < 0) {
        throw key_error("zchan: cannot create " + path + ": " + errno_text(errno));
    }
    // open() applies the umask and keeps an existing file's mode: set it exactly.
    bool ok = ::fchmod(fd, mode) == 0;
    std::size_t done = 0;
    while (ok && done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            ok = false;
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    const int err = errno;
    if (::close(fd) != 0) ok = false;
    if (!ok) throw key_error("zchan: cannot write " + path + ": " + errno_text(err));
}

std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): nothing here sets it
    return v != nullptr ? std::string(v) : std::string();
}

}  // namespace

key::key(std::string_view z85) {
    if (const char* problem = z85_problem(z85)) {
        throw key_error(std::string("zchan: malformed CURVE key: ") + problem);
    }
    z85_.assign(z85);
}

key key::from_bytes(std::string_view bytes) {
    if (bytes.size() != 32) throw key_error("zchan: a CURVE key is 32 bytes");
    std::array<char, key_chars + 1> text{};
    if (zmq_z85_encode(text.data(), reinterpret_cast<const std::uint8_t*>(bytes.data()), 32) ==
        nullptr) {
        throw key_error("zchan: cannot encode a CURVE key");
    }
    return key(std::string_view(text.data(), key_chars));
}

keypair generate() {
    std::array<char, key_chars + 1> pub{};
    std::array<char, key_chars + 1> sec{};
    if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
        throw key_error("zchan: cannot generate a CURVE keypair (libzmq without CURVE support?)");
    }
    return {key(std::string_view(pub.data(), key_chars)),
            key(std::string_view(sec.data(), key_chars))};
}

key public_key_of(const key& secret) {
    if (secret.empty()) throw key_error("zchan: no secret key given");
    std::array<char, key_chars + 1> pub{};
    if (zmq_curve_public(pub.data(), secret.z85().c_str()) != 0) {
        throw key_error("zchan: cannot derive a CURVE public key (libzmq without CURVE support?)");
    }
    return key(std::string_view(pub.data(), key_chars));
}

key load_key(const std::string& path) { return load_single(path, read_file(path, nullptr)); }

key load_secret_key(const std::string& path) {
    struct stat st {};
    const std::string text = read_file(path, &st);
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        throw key_error("zchan: secret key file " + path +
                        " is accessible by group or others; run: chmod 600 " + path);
    }
    return load_single(path, text);
}

void save_key(const std::string& path, const key& k) {
    if (k.empty()) throw key_error("zchan: no key to save to " + path);
    write_file(path, k.z85() + "\n", 0644, false);
}

void save_secret_key(const std::string& path, const key& k) {
    if (k.empty()) throw key_error("zchan: no key to save to " + path);
    write_file(path, k.z85() + "\n", 0600, false);
}

keypair write_keypair(const std::string& path_prefix) {
    const std::string sec_path = path_prefix + ".key";
    const std::string pub_path = path_prefix + ".pub";
    struct stat st {};
    for (const auto* p : {&sec_path, &pub_path}) {
        if (::lstat(p->c_str(), &st) == 0) {
            throw key_error("zchan: " + *p + " exists; not overwriting a key");
        }
    }
    keypair kp = generate();
    write_file(sec_path, kp.secret_key.z85() + "\n", 0600, true);
    try {
        write_file(pub_path, kp.public_key.z85() + "\n", 0644, true);
    } catch (...) {
        ::unlink(sec_path.c_str());  // no half-written pair
        throw;
    }
    return kp;
}

keypair load_keypair(const std::string& path_prefix) {
    keypair kp;
    kp.secret_key = load_secret_key(path_prefix + ".key");
    kp.public_key = load_key(path_prefix + ".pub");
    if (public_key_of(kp.secret_key) != kp.public_key) {
        throw key_error("zchan: " + path_prefix + ".pub is not the public key of " + path_prefix +
                        ".key");
    }
    return kp;
}

allow_list::allow_list(std::initializer_list<key> keys) {
    for (const auto& k : keys) add(k);
}

allow_list allow_list::load(const std::string& path) {
    allow_list list;
    for (auto& k : parse_keys(read_file(path, nullptr), path)) list.add(k);
    return list;
}

void allow_list::add(const key& k) {
    if (!k.empty()) keys_.insert(k);
}

std::optional<key> key_from_env(const char* name) {
    const std::string v = env_or_empty(name);
    if (v.empty()) return std::nullopt;
    if (const char* problem = z85_problem(v)) {
        throw key_error(std::string("zchan: ") + name + ": malformed CURVE key (" + problem + ")");
    }
    return key(v);
}

namespace {

/// The secret key from ZCHAN_CURVE_SECRET_KEY or ZCHAN_CURVE_SECRET_KEY_FILE.
key secret_from_env(const char* needed_by) {
    auto inline_key = key_from_env("ZCHAN_CURVE_SECRET_KEY");
    const std::string file = env_or_empty("ZCHAN_CURVE_SECRET_KEY_FILE");
    if (inline_key && !file.empty()) {
        throw key_error(
            "zchan: set ZCHAN_CURVE_SECRET_KEY or ZCHAN_CURVE_SECRET_KEY_FILE, not both");
    }
    if (inline_key) return *inline_key;
    if (!file.empty()) return load_secret_key(file);
    throw key_error(std::string("zchan: ") + needed_by +
                    " is set but neither ZCHAN_CURVE_SECRET_KEY nor ZCHAN_CURVE_SECRET_KEY_FILE");
}

}  // namespace

std::optional<server_options> server_from_env() {
    const std::string allow = env_or_empty("ZCHAN_CURVE_ALLOW_FILE");
    if (allow.empty()) return std::nullopt;
    server_options o;
    o.secret_key = secret_from_env("ZCHAN_CURVE_ALLOW_FILE");
    o.allowed_clients = allow_list::load(allow);
    return o;
}

std::optional<client_options> client_from_env() {
    auto inline_key = key_from_env("ZCHAN_CURVE_SERVER_KEY");
    const std::string file = env_or_empty("ZCHAN_CURVE_SERVER_KEY_FILE");
    if (!inline_key && file.empty()) return std::nullopt;
    if (inline_key && !file.empty()) {
        throw key_error(
            "zchan: set ZCHAN_CURVE_SERVER_KEY or ZCHAN_CURVE_SERVER_KEY_FILE, not both");
    }
    client_options o;
    o.server_key = inline_key ? *inline_key : load_key(file);
    o.secret_key = secret_from_env("ZCHAN_CURVE_SERVER_KEY");
    return o;
}

net_options& apply_env(net_options& opts) {
    if (auto s = server_from_env()) opts.curve_server = std::move(*s);
    if (auto c = client_from_env()) opts.curve_client = std::move(*c);
    return opts;
}

}  // namespace zchan::curve
