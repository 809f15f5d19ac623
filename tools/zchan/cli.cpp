// See cli.hpp.
#include "cli.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <system_error>

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zchan_cli {

std::uint64_t parse_number(std::string_view text, std::string_view what, std::uint64_t max) {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc{} || r.ptr != end || v > max) {
        throw usage_error(std::string(what) + ": expected a number" +
                          (max == UINT64_MAX ? "" : " up to " + std::to_string(max)) + ", got \"" +
                          std::string(text) + "\"");
    }
    return v;
}

args::args(const command_spec& spec, int argc, char** argv, int first) {
    auto find = [&](std::string_view name, char short_name) -> const option_spec* {
        for (const auto& o : spec.options) {
            if ((!name.empty() && o.name == name) ||
                (short_name != 0 && o.short_name == short_name))
                return &o;
        }
        return nullptr;
    };
    bool options_done = false;
    for (int i = first; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (options_done || a.size() < 2 || a[0] != '-') {
            pos_.emplace_back(a);
            continue;
        }
        if (a == "--") {
            options_done = true;
            continue;
        }
        if (a == "--help" || a == "-h") {
            help_ = true;
            continue;
        }
        if (a == "--version") {
            version_ = true;
            continue;
        }
        std::string_view name;
        std::optional<std::string_view> inline_value;
        const option_spec* o = nullptr;
        if (a.starts_with("--")) {
            name = a.substr(2);
            if (auto eq = name.find('='); eq != std::string_view::npos) {
                inline_value = name.substr(eq + 1);
                name = name.substr(0, eq);
            }
            o = find(name, 0);
        } else if (a.size() == 2) {
            o = find({}, a[1]);
        }
        if (o == nullptr) throw usage_error("unknown option " + std::string(a));
        auto& slot = values_[std::string(o->name)];
        if (!o->repeatable && !slot.empty()) {
            throw usage_error("option --" + std::string(o->name) + " given twice");
        }
        if (!o->takes_value) {
            if (inline_value)
                throw usage_error("option --" + std::string(o->name) + " takes no value");
            slot.emplace_back();
            continue;
        }
        if (inline_value) {
            slot.emplace_back(*inline_value);
        } else if (i + 1 < argc) {
            slot.emplace_back(argv[++i]);
        } else {
            throw usage_error("option --" + std::string(o->name) + " needs a value (" +
                              std::string(o->value_name) + ")");
        }
    }
    if (help_ || version_) return;
    if (pos_.size() < spec.min_positionals) {
        throw usage_error("missing arguments: expected " + std::string(spec.positionals));
    }
    if (pos_.size() > spec.max_positionals) {
        throw usage_error("unexpected argument \"" + pos_[spec.max_positionals] + "\"");
    }
}

std::optional<std::string> args::value(std::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
}

std::vector<std::string> args::values(std::string_view name) const {
    auto it = values_.find(std::string(name));
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::uint64_t args::number(std::string_view name, std::uint64_t def, std::uint64_t max) const {
    auto v = value(name);
    return v ? parse_number(*v, "--" + std::string(name), max) : def;
}

namespace {
void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
}
bool resolves(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (res != nullptr) ::freeaddrinfo(res);
    return rc == 0;
}
}  // namespace

std::string tcp_host(std::string_view endpoint) {
    if (!endpoint.starts_with("tcp://")) return {};
    std::string_view a = endpoint.substr(6);
    const auto colon = a.rfind(':');
    if (colon == std::string_view::npos) return {};
    a = a.substr(0, colon);
    if (auto semi = a.find(';'); semi != std::string_view::npos) a = a.substr(semi + 1);
    if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    if (a.empty() || a == "*") return {};
    return std::string(a);
}

std::string cli_message(const std::exception& e, std::string_view endpoint) {
    std::string m = e.what();
    const auto* se = dynamic_cast<const std::system_error*>(&e);
    if (se != nullptr) {
        const std::string suffix = ": " + se->code().message();
        if (m.size() > suffix.size() && m.ends_with(suffix)) m.resize(m.size() - suffix.size());
    }
    if (m.starts_with("zchan: ")) m.erase(0, 7);
    replace_all(m, "net_options::create_capacity", "--cap N");
    replace_all(m, "(net_options::curve_client)",
                "(set ZCHAN_CURVE_SERVER_KEY_FILE and ZCHAN_CURVE_SECRET_KEY_FILE)");
    replace_all(m, "net_options::curve_client",
                "ZCHAN_CURVE_SERVER_KEY_FILE and ZCHAN_CURVE_SECRET_KEY_FILE");
    replace_all(m, "net_options::curve_server", "ZCHAN_CURVE_ALLOW_FILE");
    const bool no_answer = m.starts_with("no answer from ");
    const bool bind_failed = m.starts_with("cannot bind ");
    if (no_answer || bind_failed) {
        const std::string host = tcp_host(endpoint);
        if (!host.empty() && !resolves(host)) {
            return (bind_failed ? "cannot bind " : "cannot dial ") + std::string(endpoint) +
                   ": cannot resolve host \"" + host + "\"";
        }
        if (no_answer) m += " (is a hub or zchan server running there? --connect-timeout MS)";
    }
    return m;
}

std::string version_line() { return std::string("zchan ") + ZCHAN_VERSION; }

namespace {
/// `text` wrapped to `width` columns, continuation lines indented by `indent`.
std::string wrap(std::string_view text, std::size_t col, std::size_t indent,
                 std::size_t width = 100) {
    std::string out;
    bool first = true;
    while (!text.empty()) {
        const auto sp = text.find(' ');
        const std::string_view word = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view{} : text.substr(sp + 1);
        if (!first && col + 1 + word.size() > width) {
            out += '\n' + std::string(indent, ' ');
            col = indent;
        } else if (!first) {
            out += ' ';
            ++col;
        }
        out += word;
        col += word.size();
        first = false;
    }
    return out;
}
}  // namespace

void print_help(const command_spec& spec) {
    std::cout << "Usage: zchan " << spec.name << (spec.options.empty() ? "" : " [options]") << ' '
              << spec.positionals << "\n\n"
              << spec.summary << "\n";
    std::vector<std::string> lefts;
    std::size_t w = std::string_view("      --version").size();
    for (const auto& o : spec.options) {
        std::string left = "  ";
        left += o.short_name != 0 ? std::string("-") + o.short_name + ", " : "    ";
        left += "--" + std::string(o.name);
        if (o.takes_value) left += " " + std::string(o.value_name);
        w = std::max(w, left.size());
        lefts.push_back(std::move(left));
    }
    w += 2;
    std::cout << "\nOptions:\n";
    for (std::size_t i = 0; i < spec.options.size(); ++i) {
        std::string left = lefts[i];
        left.resize(w, ' ');
        std::cout << left << wrap(spec.options[i].help, w, w) << '\n';
    }
    std::string h = "  -h, --help";
    h.resize(w, ' ');
    std::cout << h << "this help\n";
    std::string v = "      --version";
    v.resize(w, ' ');
    std::cout << v << "the version\n";
    if (!spec.details.empty()) std::cout << '\n' << spec.details;
}

namespace {
sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);  // our own wake-up at destruction
    return set;
}
}  // namespace

interrupt::interrupt() {
    std::signal(SIGPIPE, SIG_IGN);
    const sigset_t set = handled_signals();
    // Blocked in this thread, and so in every thread started later (libzmq's
    // included): only the waiter below ever takes them.
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    waiter_ = std::thread([this, set] {
        int sig = 0;
        while (sigwait(&set, &sig) == 0) {
            if (sig == SIGUSR1) {
                if (done_.load(std::memory_order_acquire)) return;
                continue;
            }
            if (sig_.exchange(sig, std::memory_order_acq_rel) == 0) {
                stop_.close();
                const std::uint64_t one = 1;
                [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
            }
        }
    });
}

interrupt::~interrupt() {
    done_.store(true, std::memory_order_release);
    pthread_kill(waiter_.native_handle(), SIGUSR1);
    waiter_.join();
    ::close(fd_);
}

}  // namespace zchan_cli
