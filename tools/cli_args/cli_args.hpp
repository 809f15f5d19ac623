// The one command-line parser of zchan's programs: the zchan tool
// (tools/zchan) and the examples (examples/). Table-driven: each program or
// subcommand describes its options in a command_spec, and args parses argv
// against it ("--name value", "--name=value", "-x value", flags, "--").
// Header-only, standard library only.
//
// Thread safety: an args belongs to one thread.
//
// Example:
//   const zchan_cli::command_spec spec{"net_consumer", "ENDPOINT", 1, 1, "Dials ...",
//       {{"name", 0, true, false, "NAME", "sent on done (default consumer)"}}, ""};
//   const auto a = zchan_cli::parse_or_exit(spec, argc, argv);
//   std::string name = a.value("name").value_or("consumer");
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zchan_cli {

/// A bad command line: the program prints the message and the usage line, exits 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One option of a subcommand's table.
struct option_spec {
    std::string_view name;  ///< long name without "--"
    char short_name = 0;    ///< 0: none
    bool takes_value = false;
    bool repeatable = false;
    std::string_view value_name;
    std::string_view help;
};

/// A subcommand: its table, positionals and help text.
struct command_spec {
    std::string_view name;
    std::string_view positionals;  ///< e.g. "ENDPOINT NAME"
    std::size_t min_positionals = 0;
    std::size_t max_positionals = 0;
    std::string_view summary;
    std::vector<option_spec> options;
    std::string_view details;  ///< more help text, examples
};

/// The parsed command line of one subcommand.
class args {
public:
    /// Parses argv[first..]: "--name value", "--name=value", "-x value",
    /// flags, and "--" ending the options. "--help"/"-h" sets help(),
    /// "--version" version().
    /// Throws: usage_error.
    args(const command_spec& spec, int argc, char** argv, int first);

    [[nodiscard]] bool help() const noexcept { return help_; }
    /// "--version" was given.
    [[nodiscard]] bool version() const noexcept { return version_; }
    [[nodiscard]] bool flag(std::string_view name) const {
        return values_.count(std::string(name)) != 0;
    }
    [[nodiscard]] std::optional<std::string> value(std::string_view name) const;
    [[nodiscard]] std::vector<std::string> values(std::string_view name) const;
    /// A non-negative integer option, or `def`. Throws: usage_error.
    [[nodiscard]] std::uint64_t number(std::string_view name, std::uint64_t def,
                                       std::uint64_t max = UINT64_MAX) const;
    [[nodiscard]] const std::vector<std::string>& positional() const noexcept { return pos_; }

private:
    bool help_ = false;
    bool version_ = false;
    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> pos_;
};

/// Parses a non-negative decimal integer <= max. Throws: usage_error naming `what`.
inline std::uint64_t parse_number(std::string_view text, std::string_view what,
                                  std::uint64_t max = UINT64_MAX);

/// Prints the help of `spec` to stdout, wrapped to 100 columns: "Usage: "
/// `program` `spec.name` ... (`program`: "zchan " for a subcommand, "" for a program).
inline void print_help(const command_spec& spec, std::string_view program = "");

inline std::uint64_t parse_number(std::string_view text, std::string_view what, std::uint64_t max) {
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

inline args::args(const command_spec& spec, int argc, char** argv, int first) {
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

inline std::optional<std::string> args::value(std::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
}

inline std::vector<std::string> args::values(std::string_view name) const {
    auto it = values_.find(std::string(name));
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

inline std::uint64_t args::number(std::string_view name, std::uint64_t def,
                                  std::uint64_t max) const {
    auto v = value(name);
    return v ? parse_number(*v, "--" + std::string(name), max) : def;
}

namespace detail {
/// `text` wrapped to `width` columns, continuation lines indented by `indent`.
inline std::string wrap(std::string_view text, std::size_t col, std::size_t indent,
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
}  // namespace detail

inline void print_help(const command_spec& spec, std::string_view program) {
    std::cout << "Usage: " << program << spec.name << (spec.options.empty() ? "" : " [options]")
              << ' ' << spec.positionals << "\n\n"
              << spec.summary << "\n";
    std::vector<std::string> lefts;
    std::size_t w = std::string_view("      --version").size();
    for (const auto& o : spec.options) {
        std::string left = "  ";
        left += o.short_name != 0 ? std::string("-") + o.short_name + ", " : "    ";
        // Appends only: GCC 12 reports a false -Wrestrict for a literal
        // prepended to a temporary string (GCC PR 105329).
        left += "--";
        left += o.name;
        if (o.takes_value) {
            left += ' ';
            left += o.value_name;
        }
        w = std::max(w, left.size());
        lefts.push_back(std::move(left));
    }
    w += 2;
    std::cout << "\nOptions:\n";
    for (std::size_t i = 0; i < spec.options.size(); ++i) {
        std::string left = lefts[i];
        left.resize(w, ' ');
        std::cout << left << detail::wrap(spec.options[i].help, w, w) << '\n';
    }
    std::string h = "  -h, --help";
    h.resize(w, ' ');
    std::cout << h << "this help\n";
    if (!program.empty()) {  // the zchan tool's subcommands
        std::string v = "      --version";
        v.resize(w, ' ');
        std::cout << v << "the version\n";
    }
    if (!spec.details.empty()) std::cout << '\n' << spec.details;
}

/// For a program with one command_spec (the examples): prints `message` and
/// the usage line to stderr and exits 2.
[[noreturn]] inline void usage_exit(const command_spec& spec, const std::string& message) {
    std::cerr << spec.name << ": " << message << "\nUsage: " << spec.name
              << (spec.options.empty() ? "" : " [options]") << ' ' << spec.positionals << "   ("
              << spec.name << " --help)\n";
    std::exit(2);
}

/// For a program with one command_spec (the examples): parses argv[1..];
/// on --help prints the help and exits 0; on a bad command line exit_usage.
inline args parse_or_exit(const command_spec& spec, int argc, char** argv) {
    try {
        args a(spec, argc, argv, 1);
        if (a.version()) throw usage_error("unknown option --version");
        if (a.help()) {
            print_help(spec);
            std::exit(0);
        }
        return a;
    } catch (const usage_error& e) {
        usage_exit(spec, e.what());
    }
}

/// parse_or_exit, then `read(args)` (which may throw usage_error, as
/// args::number does), whose result it returns; a usage_error from either
/// ends in usage_exit.
template <class Read>
auto parse_or_exit(const command_spec& spec, int argc, char** argv, Read&& read) {
    const args a = parse_or_exit(spec, argc, argv);
    try {
        return std::forward<Read>(read)(a);
    } catch (const usage_error& e) {
        usage_exit(spec, e.what());
    }
}

}  // namespace zchan_cli
