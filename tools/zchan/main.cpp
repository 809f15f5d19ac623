// zchan: the command-line tool (README "Command-line tool").
//
//   zchan hub ENDPOINT [--channel NAME:CAP[:TYPE]]...   host channels (zchan::hub)
//   zchan send ENDPOINT NAME [--close]                   each stdin line -> one std::string
//   zchan recv ENDPOINT NAME [-n N]                      print each value, one per line
//   zchan stat ENDPOINT [--watch]                        the server's channels ("$stat")
//   zchan keygen PREFIX                                  a CURVE keypair: PREFIX.key, PREFIX.pub
//
// Security: every subcommand that binds or dials reads the ZCHAN_CURVE_*
// environment variables (zchan/security.hpp, curve::apply_env), so a hub
// and its clients turn CurveZMQ on without options of their own.
//
// Every subcommand takes --help. Errors go to stderr; exit codes are in
// cli.hpp. SIGINT/SIGTERM end every subcommand cleanly: dialed handles are
// destroyed (so the home gets BYE and takes back unacknowledged values) and
// a hub ends its sessions; send and recv then exit 130, hub and stat 0.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <zchan/zchan.hpp>
#include "cli.hpp"
#include "io.hpp"

namespace {

/// "lost the hub (peer lost: WHY)": WHY from the library's peer_lost, whose
/// what() reads "zchan: WHY: peer lost".
std::string lost_text(const zchan::peer_lost& e) {
    std::string why = e.what();
    const std::string head = "zchan: ";
    const std::string tail = ": peer lost";
    if (why.rfind(head, 0) == 0) why.erase(0, head.size());
    if (why.size() > tail.size() && why.compare(why.size() - tail.size(), tail.size(), tail) == 0) {
        why.erase(why.size() - tail.size());
    }
    if (why.empty() || why == "zchan" || why == "peer lost") return "lost the hub (peer lost)";
    return "lost the hub (peer lost: " + why + ")";
}

/// The same for a handle that returned a peer_lost status: cap() throws the reason.
std::string lost_text(const zchan::channel<std::string>& ch) {
    try {
        (void)ch.cap();
    } catch (const zchan::peer_lost& e) {
        return lost_text(e);
    }
    return "lost the hub (peer lost)";
}

using namespace zchan_cli;
using namespace std::chrono_literals;

const command_spec hub_spec{
    "hub",
    "ENDPOINT",
    1,
    1,
    "Hosts named channels for processes that all dial.\n"
    "None of them has to be the home. Prints the bound endpoint on stdout (the port filled\n"
    "in for tcp://host:*), then serves until SIGINT or SIGTERM. Values are kept as opaque\n"
    "bytes; each channel's value type is the one given with --channel, or the first dialer's.\n"
    "Dialers that give a capacity (--cap) create channels, within the limits below.",
    {
        {"channel", 'c', true, true, "NAME:CAP[:TYPE]",
         "create channel NAME with capacity CAP (0: unbuffered), value type TYPE (e.g. string)"},
        {"no-create", 0, false, false, "", "only --channel channels exist: dialers cannot create"},
        {"heartbeat", 0, true, false, "MS",
         "every session pings every MS ms when idle (default 1000)"},
        {"heartbeat-timeout", 0, true, false, "MS",
         "a peer, and the hub for its peers, is lost after MS ms of silence (default 3000)"},
        {"max-cap", 0, true, false, "N", "largest capacity a dialer may create (default 65536)"},
        {"max-channels", 0, true, false, "N",
         "most channels created by dialers at once (default 1024)"},
        {"max-total-cap", 0, true, false, "N", "largest sum of their capacities (default 1048576)"},
        {"idle-timeout", 0, true, false, "MS",
         "remove a dialer-created channel that is empty and has had no session for MS ms "
         "(default 60000; 0: never)"},
    },
    "Examples:\n"
    "  zchan hub 'tcp://*:5555' --channel jobs:64\n"
    "  zchan hub tcp://127.0.0.1:* --channel events:0:string\n",
};

const command_spec send_spec{
    "send",
    "ENDPOINT NAME",
    2,
    2,
    "Sends each line of stdin as one std::string value.\n"
    "Lines go to channel NAME at ENDPOINT (a hub or any zchan::server) in order, without their\n"
    "newline (or NUL-terminated values, or netstrings: --framing); blocks while the channel is\n"
    "full.",
    {
        {"close", 0, false, false, "", "close the channel at end of input"},
        {"close-after", 0, true, false, "N",
         "one of N producers: close the channel once all N have reached the end of their input "
         "(counted in channel NAME.done)"},
        {"cap", 0, true, false, "N", "on a hub: create the channel with capacity N if missing"},
        {"window", 0, true, false, "W",
         "send up to W values ahead of the home's confirmation (default 1024; 0: one round trip "
         "per value). Exit 0 still means every value is in the channel"},
        {"framing", 0, true, false, "F",
         "how values are delimited: line (default), nul or netstring (LEN:BYTES,)"},
        {"null", '0', false, false, "", "same as --framing nul: each value ends with a NUL byte"},
        {"timeout", 't', true, false, "MS",
         "give up (exit 124) when there is no room for a value within MS ms"},
        {"connect-timeout", 0, true, false, "MS", "give up dialing after MS ms (default 5000)"},
    },
    "Examples:\n  seq 1 100000 | zchan send tcp://127.0.0.1:5555 jobs --close\n"
    "  find . -print0 | zchan send -0 tcp://127.0.0.1:5555 files --close\n",
};

const command_spec recv_spec{
    "recv",
    "ENDPOINT NAME",
    2,
    2,
    "Prints each std::string value received, one per line (or --framing).\n"
    "Receives from channel NAME at ENDPOINT until the channel is closed and drained (or -n\n"
    "values).",
    {
        {"count", 'n', true, false, "N", "stop after N values"},
        {"cap", 0, true, false, "N", "on a hub: create the channel with capacity N if missing"},
        {"prefetch", 0, true, false, "P",
         "receive up to P values ahead (default 256; 0: one round trip per value, exact Go "
         "semantics)"},
        {"framing", 0, true, false, "F",
         "how values are delimited: line (default), nul or netstring (LEN:BYTES,)"},
        {"null", '0', false, false, "", "same as --framing nul: each value ends with a NUL byte"},
        {"timeout", 't', true, false, "MS",
         "give up (exit 124) when no value arrives within MS ms"},
        {"batch", 0, false, false, "",
         "into a pipe, write values in batches, not one per read of the reader: about 10x "
         "faster, but a reader that stops early loses what it read or left in the pipe"},
        {"connect-timeout", 0, true, false, "MS", "give up dialing after MS ms (default 5000)"},
    },
    "Example:\n  zchan recv tcp://127.0.0.1:5555 jobs | wc -l\n",
};

const command_spec stat_spec{
    "stat",
    "ENDPOINT",
    1,
    1,
    "Lists the channels served at ENDPOINT and their counters.\n"
    "Works with a hub or any zchan::server: value type, len/cap, closed, dialed sessions (and\n"
    "how many of them send and receive), values in and out, values given back, errors.",
    {
        {"watch", 'w', false, false, "", "redraw every interval until Ctrl-C, like top"},
        {"interval", 'i', true, false, "MS", "--watch refresh interval (default 1000)"},
        {"json", 'j', false, false, "",
         "one JSON object per snapshot, on one line (keys: README \"zchan stat --json\")"},
        {"connect-timeout", 0, true, false, "MS", "give up dialing after MS ms (default 5000)"},
    },
    "Columns: LEN/CAP, CLOSED, SESS (handles attached), SEND/RECV (of those, senders and\n"
    "receivers), IN (remote sends accepted), OUT (deliveries), RET (given back), ERR.\n",
};

const command_spec keygen_spec{
    "keygen",
    "PREFIX",
    1,
    1,
    "Writes a new CURVE keypair: PREFIX.key (secret, mode 0600) and PREFIX.pub.\n"
    "Prints the public key. Refuses to overwrite existing files. Give a home's .pub to its\n"
    "clients (ZCHAN_CURVE_SERVER_KEY_FILE) and put each client's public key in the home's\n"
    "allow-list (ZCHAN_CURVE_ALLOW_FILE); each side's .key is its ZCHAN_CURVE_SECRET_KEY_FILE.",
    {},
    "Example:\n"
    "  zchan keygen home && zchan keygen worker1\n"
    "  cat worker1.pub >> allowed_clients\n"
    "  ZCHAN_CURVE_SECRET_KEY_FILE=home.key ZCHAN_CURVE_ALLOW_FILE=allowed_clients \\\n"
    "      zchan hub 'tcp://*:5555'\n"
    "  ZCHAN_CURVE_SECRET_KEY_FILE=worker1.key ZCHAN_CURVE_SERVER_KEY_FILE=home.pub \\\n"
    "      zchan recv tcp://home:5555 jobs\n",
};

const command_spec close_spec{
    "close",
    "ENDPOINT NAME",
    2,
    2,
    "Closes channel NAME at ENDPOINT, as Go's close(ch).\n"
    "Values already in it are still received; then every receiver's range ends. Works whatever\n"
    "the channel's value type. Closing a closed channel fails (exit 1), as in Go.",
    {
        {"connect-timeout", 0, true, false, "MS", "give up dialing after MS ms (default 5000)"},
    },
    "Example:\n  zchan close tcp://127.0.0.1:5555 jobs\n",
};

const std::vector<const command_spec*> commands{&hub_spec,   &send_spec, &recv_spec,
                                                &close_spec, &stat_spec, &keygen_spec};

void print_usage(std::ostream& os) {
    os << "Usage: zchan COMMAND [options] ARGS...   (zchan COMMAND --help for more)\n\n"
          "Go channels across processes over ZeroMQ.\n\nCommands:\n";
    for (const auto* c : commands) {
        std::string left = "  " + std::string(c->name) + " " + std::string(c->positionals);
        if (left.size() < 26) left.resize(26, ' ');
        os << left << ' ' << c->summary.substr(0, c->summary.find('\n')) << '\n';
    }
    os << "\nzchan --version prints the version. Exit status: 0 ok, 1 failure (connect, type\n"
          "mismatch, peer lost, closed), 2 bad arguments, 130 send/recv interrupted by SIGINT or\n"
          "SIGTERM, 141 recv's stdout closed.\n";
}

zchan::net_options dial_options(const args& a) {
    zchan::net_options o;
    o.connect_timeout = std::chrono::milliseconds(a.number("connect-timeout", 5000, 3'600'000));
    if (a.value("cap")) {
        o.create_capacity = static_cast<std::uint32_t>(a.number("cap", 0, UINT32_MAX));
    }
    zchan::curve::apply_env(o);  // secure dial if ZCHAN_CURVE_SERVER_KEY(_FILE) is set
    return o;
}

/// --framing / -0.
framing framing_of(const args& a) {
    const auto f = a.value("framing");
    if (a.flag("null")) {
        if (f && *f != "nul")
            throw usage_error("-0 and --framing " + *f + " contradict each other");
        return framing::nul;
    }
    return f ? parse_framing(*f) : framing::line;
}

/// --timeout MS, if given.
std::optional<std::chrono::milliseconds> timeout_of(const args& a) {
    if (!a.value("timeout")) return std::nullopt;
    return std::chrono::milliseconds(a.number("timeout", 0, 86'400'000));
}

/// --close-after N: this producer reached the end of its input. Counts it in
/// the channel NAME.done (created with capacity N) and closes NAME once the
/// count reaches N, so the last of N producers closes it (Go's
/// WaitGroup-then-close). Two producers that finish together may both see N:
/// the second close finds the channel closed, which is fine here. The one
/// whose close succeeds empties NAME.done, for the next round.
void finish_producer(const std::string& endpoint, const std::string& name,
                     zchan::channel<std::string>& ch, std::uint32_t n, zchan::net_options opts) {
    opts.create_capacity = n;
    opts.prefetch = 0;
    auto done = zchan::dial<std::string>(endpoint, name + ".done", opts);
    if (done.cap() < n) {
        throw std::runtime_error("channel \"" + name + ".done\" has capacity " +
                                 std::to_string(done.cap()) + ", fewer than --close-after " +
                                 std::to_string(n));
    }
    done.send("done");
    if (done.len() < n) return;  // others are still sending
    try {
        ch.close();
    } catch (const zchan::channel_closed&) {
        return;  // another producer finished at the same moment and closed it
    }
    while (done.try_recv().status == zchan::recv_status::ok) {
    }
}

/// A --cap that did not apply: the channel was there already (protocol.md §17.1).
void note_capacity(std::string_view who, const std::string& name,
                   const zchan::channel<std::string>& ch, const zchan::net_options& o) {
    if (o.create_capacity && ch.cap() != *o.create_capacity) {
        std::cerr << who << ": channel \"" << name << "\" already exists with capacity " << ch.cap()
                  << "; --cap " << *o.create_capacity << " has no effect" << std::endl;
    }
}

// ---- hub ---------------------------------------------------------------------

int run_hub(const args& a) {
    struct channel_arg {
        std::string name;
        std::uint64_t cap;
        std::string type;
    };
    std::vector<channel_arg> chans;
    for (const auto& c : a.values("channel")) {
        const auto colon = c.find(':');
        if (colon == 0 || colon == std::string::npos) {
            throw usage_error("--channel " + c + ": expected NAME:CAP[:TYPE]");
        }
        const auto colon2 = c.find(':', colon + 1);
        const std::string cap = c.substr(
            colon + 1, colon2 == std::string::npos ? std::string::npos : colon2 - colon - 1);
        std::string type = colon2 == std::string::npos ? std::string() : c.substr(colon2 + 1);
        if (colon2 != std::string::npos && type.empty()) {
            throw usage_error("--channel " + c + ": empty TYPE");
        }
        chans.push_back(
            {c.substr(0, colon), parse_number(cap, "--channel " + c + ": CAP"), std::move(type)});
    }
    zchan::hub_options o;
    zchan::curve::apply_env(o.net);  // a CURVE home if ZCHAN_CURVE_ALLOW_FILE is set
    // Every session's heartbeat: the home's settings govern both ends (protocol.md §12.1).
    o.net.heartbeat = std::chrono::milliseconds(
        a.number("heartbeat", static_cast<std::uint64_t>(o.net.heartbeat.count()), 3'600'000));
    o.net.heartbeat_timeout = std::chrono::milliseconds(
        a.number("heartbeat-timeout", static_cast<std::uint64_t>(o.net.heartbeat_timeout.count()),
                 86'400'000));
    if (o.net.heartbeat.count() == 0 || o.net.heartbeat_timeout <= o.net.heartbeat) {
        throw usage_error("--heartbeat-timeout must be longer than --heartbeat, and both above 0");
    }
    o.create_on_dial = !a.flag("no-create");
    o.max_create_capacity = a.number("max-cap", o.max_create_capacity, UINT32_MAX);
    o.max_channels = a.number("max-channels", o.max_channels);
    o.max_total_capacity = a.number("max-total-cap", o.max_total_capacity);
    o.idle_timeout = std::chrono::milliseconds(a.number("idle-timeout", 60'000, 86'400'000));
    interrupt intr;  // before the hub's threads start
    zchan::hub h(a.positional()[0], o);
    for (const auto& c : chans) {
        try {
            h.add_channel(c.name, c.cap, c.type);
        } catch (const std::invalid_argument& e) {
            throw usage_error(std::string("--channel: ") + e.what());
        }
    }
    std::cout << h.endpoint() << std::endl;
    std::cerr << "zchan hub: serving on " << h.endpoint() << " (Ctrl-C stops)" << std::endl;
    (void)intr.stop().recv();  // closed by SIGINT/SIGTERM
    const std::size_t sessions = h.sessions();
    std::cerr << "zchan hub: " << (intr.signal() == SIGINT ? "interrupted" : "terminated")
              << ", ending " << sessions << " session(s)" << std::endl;
    return exit_ok;
}

// ---- send --------------------------------------------------------------------

int run_send(const args& a) {
    auto opts = dial_options(a);
    opts.send_window = static_cast<std::uint32_t>(a.number("window", 1024, 65536));
    const framing fr = framing_of(a);
    const auto timeout = timeout_of(a);
    std::optional<std::uint32_t> close_after;
    if (a.value("close-after")) {
        if (a.flag("close")) throw usage_error("--close and --close-after exclude each other");
        close_after = static_cast<std::uint32_t>(a.number("close-after", 0, 65536));
        if (*close_after == 0) throw usage_error("--close-after: expected 1 or more producers");
    }
    interrupt intr;
    const std::string name = a.positional()[1];
    auto ch = zchan::dial<std::string>(a.positional()[0], name, opts);
    note_capacity("zchan send", name, ch, opts);
    value_reader in(STDIN_FILENO, intr.fd(), fr, opts.max_frame);
    std::uint64_t sent = 0;  // sends that returned ok
    std::size_t size = 0;    // of the value being sent
    // With a window a send returns before the home has the value; these are
    // the ones it confirmed (protocol.md §9.1).
    auto accepted = [&] { return sent - std::min<std::uint64_t>(sent, ch.unconfirmed_sends()); };
    auto fail = [&](const std::string& why) {
        (void)ch.flush_for(opts.heartbeat_timeout);  // confirmed, or lost (then at once)
        std::cerr << "zchan send: " << why << "; " << accepted()
                  << " value(s) from here were accepted before" << std::endl;
        return exit_failure;
    };
    try {
        while (auto v = in.next()) {
            size = v->size();
            // The common case first: room now (one round trip). Else wait for
            // room or a signal, whichever comes first.
            switch (ch.try_send(std::move(*v))) {
                case zchan::send_status::ok:
                    ++sent;
                    continue;
                case zchan::send_status::closed:
                    return fail("channel \"" + name + "\" was closed");
                case zchan::send_status::peer_lost:
                    return fail(lost_text(ch));
                default:
                    break;
            }
            if (!timeout) {
                if (zchan::select(zchan::send_case(ch, std::move(*v)),
                                  zchan::recv_case(intr.stop())) == 0) {
                    ++sent;
                }
                continue;
            }
            const std::size_t i =
                zchan::select(zchan::send_case(ch, std::move(*v)), zchan::recv_case(intr.stop()),
                              zchan::timeout_case(*timeout));
            if (i == 0) ++sent;
            if (i == 2) {
                std::cerr << "zchan send: no room in channel \"" << name << "\" within "
                          << timeout->count() << " ms; " << sent
                          << " value(s) from here were accepted before" << std::endl;
                return exit_timeout;
            }
        }
    } catch (const zchan::channel_closed&) {
        return fail("channel \"" + name + "\" was closed");
    } catch (const zchan::peer_lost& e) {
        return fail(lost_text(e));
    } catch (const framing_error& e) {
        return fail(std::string("stdin: ") + e.what());
    } catch (const zchan::transport_error& e) {
        if (e.code() != zchan::errc::message_too_large) throw;
        return fail("value " + std::to_string(sent + 1) + " is " + std::to_string(size) +
                    " bytes, over the frame limit of " + std::to_string(opts.max_frame) +
                    " bytes (the hub's may be lower)");
    }
    if (intr.signal() != 0) {
        (void)ch.flush_for(opts.heartbeat_timeout);  // what was sent is confirmed, or not
        std::cerr << "zchan send: interrupted after " << accepted()
                  << " value(s); channel left open" << std::endl;
        return exit_interrupted;
    }
    // Exit 0 means every value is in the channel: wait for the confirmations.
    if (ch.flush() != zchan::send_status::ok) return fail(lost_text(ch));
    if (a.flag("close")) {
        try {
            ch.close();
        } catch (const zchan::channel_closed&) {
            std::cerr << "zchan send: channel \"" << name << "\" was already closed" << std::endl;
            return exit_failure;
        } catch (const zchan::peer_lost& e) {
            return fail(lost_text(e) + " at --close");
        }
    }
    if (close_after) {
        try {
            finish_producer(a.positional()[0], name, ch, *close_after, opts);
        } catch (const zchan::peer_lost& e) {
            return fail(lost_text(e) + " at --close-after");
        }
    }
    return exit_ok;
}

// ---- recv --------------------------------------------------------------------

int run_recv(const args& a) {
    auto opts = dial_options(a);
    const std::uint64_t limit = a.number("count", UINT64_MAX);  // no -n: until closed
    // Take no more values ahead than wanted (they would be given back at exit).
    opts.prefetch = static_cast<std::uint32_t>(std::min(a.number("prefetch", 256, 65536), limit));
    if (limit == 0) return exit_ok;
    const framing fr = framing_of(a);
    const auto timeout = timeout_of(a);
    bool timed_out = false;
    interrupt intr;
    value_writer out(STDOUT_FILENO, fr, intr.fd(), !a.flag("batch"));
    std::uint64_t got = 0;  // values handed to `out`
    bool closed = false;
    bool out_gone = false;
    {
        // Destroyed before the messages below: BYE gives the hub back every
        // value this handle received ahead and did not hand out.
        auto ch = zchan::dial<std::string>(a.positional()[0], a.positional()[1], opts);
        note_capacity("zchan recv", a.positional()[1], ch, opts);
        try {
            while (!closed && got < limit && intr.signal() == 0) {
                if (!out.wait_ready()) {  // paced by a pipe's reader (io.hpp)
                    out_gone = intr.signal() == 0;
                    break;
                }
                auto r = ch.try_recv();
                if (r.status == zchan::recv_status::ok) {
                    ++got;
                    out.put(*r.value);
                    continue;
                }
                if (r.status == zchan::recv_status::closed) break;
                if (r.status == zchan::recv_status::peer_lost)
                    (void)ch.cap();  // throws, saying why
                out.flush();         // about to wait: show what we have
                auto take = [&](std::optional<std::string> v) {
                    if (!v) {
                        closed = true;
                        return;
                    }
                    ++got;
                    out.put(*v);
                };
                const std::size_t i =
                    timeout
                        ? zchan::select(zchan::recv_case(ch, take), zchan::recv_case(intr.stop()),
                                        zchan::recv_case(out.gone()), zchan::timeout_case(*timeout))
                        : zchan::select(zchan::recv_case(ch, take), zchan::recv_case(intr.stop()),
                                        zchan::recv_case(out.gone()));
                if (i == 2) out_gone = true;
                if (i == 3) timed_out = true;
                if (out_gone || timed_out) break;
            }
            out.flush();
        } catch (const output_closed&) {
            out_gone = true;
        } catch (const zchan::peer_lost& e) {
            try {
                out.flush();
            } catch (const std::exception&) {
            }
            std::cerr << "zchan recv: " << lost_text(e) << " after " << got << " value(s)"
                      << std::endl;
            return exit_failure;
        }
    }
    if (out_gone) {
        std::cerr << "zchan recv: stdout closed after " << got
                  << " value(s) (the last may not have been read); the rest stay in the channel"
                  << std::endl;
        return exit_stdout_closed;
    }
    if (timed_out) {
        std::cerr << "zchan recv: no value within " << timeout->count() << " ms; " << got
                  << " value(s) received" << std::endl;
        return exit_timeout;
    }
    if (intr.signal() != 0 && !closed && got < limit) {
        std::cerr << "zchan recv: interrupted after " << got << " value(s)" << std::endl;
        return exit_interrupted;
    }
    return exit_ok;
}

// ---- stat --------------------------------------------------------------------

std::string render(const zchan::server_stats& s) {
    std::vector<std::vector<std::string>> rows{
        {"NAME", "TYPE", "LEN/CAP", "CLOSED", "SESS", "SEND", "RECV", "IN", "OUT", "RET", "ERR"}};
    for (const auto& c : s.channels) {
        rows.push_back({c.name, c.type.empty() ? "-" : c.type,
                        std::to_string(c.len) + "/" + std::to_string(c.cap),
                        c.closed ? "yes" : "no", std::to_string(c.sessions),
                        std::to_string(c.senders), std::to_string(c.receivers),
                        std::to_string(c.values_in), std::to_string(c.values_out),
                        std::to_string(c.returned), std::to_string(c.errors)});
    }
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    // This stat's own session on "$stat" is not counted.
    const std::uint64_t sessions = s.sessions > 0 ? s.sessions - 1 : 0;
    std::string out = s.endpoint + "  sessions " + std::to_string(sessions) + "  refused dials " +
                      std::to_string(s.refused_dials) + "  malformed frames " +
                      std::to_string(s.malformed_frames) + "\n";
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            std::string cell = r[i];
            if (i + 1 < r.size()) cell.resize(width[i] + 2, ' ');
            line += cell;
        }
        out += line + "\n";
    }
    if (s.channels.empty()) out += "(no channels)\n";
    return out;
}

/// `v` as a JSON string: quotes, backslashes and control characters escaped,
/// bytes that are not UTF-8 replaced by U+FFFD.
std::string json_string(std::string_view v) {
    std::string out = "\"";
    for (std::size_t i = 0; i < v.size();) {
        const auto c = static_cast<unsigned char>(v[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // A UTF-8 sequence: lead byte, then 1-3 continuation bytes.
            const std::size_t n = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            bool ok = n != 0 && i + n <= v.size() && !(c >= 0xF8);
            for (std::size_t k = 1; ok && k < n; ++k) {
                ok = (static_cast<unsigned char>(v[i + k]) & 0xC0) == 0x80;
            }
            if (ok) {
                out.append(v.substr(i, n));
                i += n;
            } else {
                out += "\\ufffd";
                ++i;
            }
        }
    }
    return out + '"';
}

/// One snapshot as one line of JSON (README "zchan stat --json"; the keys are stable).
std::string render_json(const zchan::server_stats& s) {
    auto num = [](std::uint64_t v) { return std::to_string(v); };
    std::string out = "{\"endpoint\":" + json_string(s.endpoint) +
                      ",\"sessions\":" + num(s.sessions > 0 ? s.sessions - 1 : 0) +
                      ",\"refused_dials\":" + num(s.refused_dials) +
                      ",\"malformed_frames\":" + num(s.malformed_frames) + ",\"channels\":[";
    bool first = true;
    for (const auto& c : s.channels) {
        if (!first) out += ',';
        first = false;
        out += "{\"name\":" + json_string(c.name) + ",\"type\":" + json_string(c.type) +
               ",\"len\":" + num(c.len) + ",\"cap\":" + num(c.cap) +
               ",\"closed\":" + (c.closed ? "true" : "false") + ",\"sessions\":" + num(c.sessions) +
               ",\"senders\":" + num(c.senders) + ",\"receivers\":" + num(c.receivers) +
               ",\"values_in\":" + num(c.values_in) + ",\"values_out\":" + num(c.values_out) +
               ",\"returned\":" + num(c.returned) + ",\"errors\":" + num(c.errors) + "}";
    }
    return out + "]}\n";
}

int run_stat(const args& a) {
    const auto opts = dial_options(a);
    const auto interval = std::chrono::milliseconds(a.number("interval", 1000, 3'600'000));
    const bool watch = a.flag("watch");
    const bool json = a.flag("json");
    interrupt intr;
    auto ch = zchan::dial<zchan::server_stats>(a.positional()[0], zchan::stats_channel, opts);
    // Into a terminal --watch redraws like top; elsewhere it appends plain
    // snapshots, a blank line between them.
    // With --json, one line per snapshot.
    const bool redraw = watch && !json && ::isatty(STDOUT_FILENO) == 1;
    for (bool first = true;; first = false) {
        auto s = ch.recv();
        if (!s) throw std::runtime_error("the server closed \"$stat\"");
        if (json) {
            std::cout << render_json(*s) << std::flush;
        } else {
            if (redraw) {
                std::cout << "\033[H\033[2J";  // home, clear
            } else if (!first) {
                std::cout << '\n';
            }
            std::cout << render(*s) << std::flush;
        }
        if (!watch) return exit_ok;
        if (zchan::select(zchan::recv_case(intr.stop()), zchan::timeout_case(interval)) == 0) {
            return exit_ok;  // Ctrl-C is how --watch ends
        }
    }
}

// ---- close -------------------------------------------------------------------

/// Closes `name` at `endpoint` whatever its value type: the type identity
/// comes from "$stat" (a channel nobody dialed yet takes "string"), and the
/// CLOSE goes through the transport's link directly (zchan/detail/net_link.hpp),
/// since zchan::dial needs the C++ type. Returns false if it was already closed.
bool close_channel(const std::string& endpoint, const std::string& name,
                   const zchan::net_options& opts) {
    std::string type;
    bool found = false;
    for (const auto& c : zchan::stats(endpoint, opts).channels) {
        if (c.name == name) {
            type = c.type.empty() ? zchan::type_name<std::string>::value() : c.type;
            found = true;
        }
    }
    if (!found) {
        throw zchan::connect_error("no channel \"" + name + "\" is served at " + endpoint,
                                   make_error_code(zchan::errc::unknown_channel));
    }
    auto link = zchan::detail::net_link::dial(endpoint, name, type, opts);
    auto r = link->start(zchan::detail::net_op::close, false, {});
    switch (link->wait(*r, zchan::detail::no_deadline)) {
        case zchan::detail::net_answer::ok:
            return true;
        case zchan::detail::net_answer::lost:
            throw zchan::peer_lost(link->lost_what() + " before it confirmed the close");
        default:
            return false;
    }
}

int run_close(const args& a) {
    auto opts = dial_options(a);
    opts.create_capacity.reset();
    interrupt intr;
    if (!close_channel(a.positional()[0], a.positional()[1], opts)) {
        std::cerr << "zchan close: channel \"" << a.positional()[1] << "\" was already closed"
                  << std::endl;
        return exit_failure;
    }
    return exit_ok;
}

// ---- keygen ------------------------------------------------------------------

int run_keygen(const args& a) {
    const std::string& prefix = a.positional()[0];
    const auto kp = zchan::curve::write_keypair(prefix);
    std::cout << kp.public_key.z85() << std::endl;
    std::cerr << "zchan keygen: wrote " << prefix << ".key (secret) and " << prefix << ".pub"
              << std::endl;
    return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        print_usage(std::cerr);
        return exit_usage;
    }
    const std::string_view cmd = argv[1];
    if (cmd == "--version" || cmd == "version") {
        std::cout << version_line() << '\n';
        return exit_ok;
    }
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        if (argc > 2) {
            for (const auto* c : commands) {
                if (c->name == argv[2]) {
                    print_help(*c, "zchan ");
                    return exit_ok;
                }
            }
        }
        print_usage(std::cout);
        return exit_ok;
    }
    const command_spec* spec = nullptr;
    for (const auto* c : commands) {
        if (c->name == cmd) spec = c;
    }
    if (spec == nullptr) {
        std::cerr << "zchan: unknown command \"" << cmd << "\"\n";
        print_usage(std::cerr);
        return exit_usage;
    }
    const std::string who = "zchan " + std::string(cmd);
    std::string endpoint;  // for error messages
    try {
        const args a(*spec, argc, argv, 2);
        if (a.help()) {
            print_help(*spec, "zchan ");
            return exit_ok;
        }
        if (a.version()) {
            std::cout << version_line() << '\n';
            return exit_ok;
        }
        if (spec != &keygen_spec && !a.positional().empty()) endpoint = a.positional()[0];
        if (spec == &hub_spec) return run_hub(a);
        if (spec == &send_spec) return run_send(a);
        if (spec == &recv_spec) return run_recv(a);
        if (spec == &keygen_spec) return run_keygen(a);
        if (spec == &close_spec) return run_close(a);
        return run_stat(a);
    } catch (const usage_error& e) {
        std::cerr << who << ": " << e.what() << "\nUsage: zchan " << cmd << " [options] "
                  << spec->positionals << "   (zchan " << cmd << " --help)\n";
        return exit_usage;
    } catch (const zchan::type_mismatch& e) {
        std::cerr << who << ": type mismatch: " << cli_message(e) << std::endl;
        return exit_failure;
    } catch (const std::exception& e) {
        std::cerr << who << ": " << cli_message(e, endpoint) << std::endl;
        return exit_failure;
    }
}
