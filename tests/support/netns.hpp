// Test hosts made of Linux network namespaces, for fault tests that need a
// real network path between processes that the test can cut:
//
//   hub namespace:  bridge br0, one veth end per host (v0, v1, ...)
//   host i:         eth0 = 10.77.0.(i+1)/24, linked to the hub's vi
//
// All of it lives in namespaces the lab creates (nothing is added to the
// test machine's own network namespace), so the subnet may repeat across
// parallel runs; the namespace names are unique per process and lab
// ("zct-<pid>-<n>-hub", "zct-<pid>-<n>-h0", ...). The destructor deletes
// them, also when the test failed; a lab also deletes namespaces left behind
// by test processes that no longer exist (killed before their destructor).
//
// Cuts are nftables rules in the hosts' own input hooks ("table inet
// zchan_fault"): a DROP looks like a dead link to TCP (no RST, no ICMP), so a
// connection survives a short cut through retransmission; a rule with
// `numgen random` makes a lossy link. (netem is not available everywhere.)
//
// Needs root, `ip` and `nft`: unavailable() says why not; tests then skip.
//
// Thread safety: a lab belongs to the test thread that made it.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace zchan_test {

class netns_lab {
public:
    /// Why labs cannot be made here ("" if they can): not root, `ip` or `nft` missing, or
    /// namespaces not permitted (e.g. an unprivileged container).
    [[nodiscard]] static std::string unavailable() {
        if (::geteuid() != 0) return "needs root (network namespaces, nftables)";
        if (tool("ip").empty()) return "needs `ip` (Debian package iproute2)";
        if (tool("nft").empty()) return "needs `nft` (Debian package nftables)";
        const std::string probe = "zct-" + std::to_string(::getpid()) + "-probe";
        if (!sh(tool("ip") + " netns add " + probe)) return "cannot create network namespaces";
        const bool nft_ok = sh(tool("ip") + " netns exec " + probe + " " + tool("nft") +
                               " add table inet zchan_fault");
        (void)sh(tool("ip") + " netns del " + probe);
        if (!nft_ok) return "nft cannot create tables in a network namespace";
        return {};
    }

    /// Creates the hub and `hosts` host namespaces (1..200).
    /// Throws: std::runtime_error (after removing what it made) if a step fails.
    explicit netns_lab(int hosts) {
        static std::atomic<int> counter{0};
        prefix_ = "zct-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
        remove_stale();
        try {
            const std::string hub = prefix_ + "-hub";
            run("netns add " + hub);
            names_.push_back(hub);
            run("-n " + hub + " link add br0 type bridge");
            run("-n " + hub + " link set br0 up");
            for (int i = 0; i < hosts; ++i) {
                const std::string h = prefix_ + "-h" + std::to_string(i);
                run("netns add " + h);
                names_.push_back(h);
                hosts_.push_back(h);
                const std::string v = "v" + std::to_string(i);
                run("-n " + hub + " link add " + v + " type veth peer name eth0 netns " + h);
                run("-n " + hub + " link set " + v + " master br0");
                run("-n " + hub + " link set " + v + " up");
                run("-n " + h + " addr add " + addr(i) + "/24 dev eth0");
                run("-n " + h + " link set eth0 up");
                run("-n " + h + " link set lo up");
                nft(i, "add table inet zchan_fault");
                nft(i,
                    "add chain inet zchan_fault input "
                    "'{ type filter hook input priority 0; policy accept; }'");
            }
        } catch (...) {
            teardown();
            throw;
        }
    }

    netns_lab(const netns_lab&) = delete;
    netns_lab& operator=(const netns_lab&) = delete;
    ~netns_lab() { teardown(); }

    /// Namespace name of host i.
    [[nodiscard]] const std::string& ns(int i) const {
        return hosts_.at(static_cast<std::size_t>(i));
    }
    /// IPv4 address of host i.
    [[nodiscard]] static std::string addr(int i) { return "10.77.0." + std::to_string(i + 1); }
    /// argv prefix that runs a program inside host i: {ip, netns, exec, <ns>}.
    [[nodiscard]] std::vector<std::string> exec_prefix(int i) const {
        return {tool("ip"), "netns", "exec", ns(i)};
    }

    /// Drops every packet between hosts a and b, both directions.
    void cut(int a, int b) {
        nft(a, "add rule inet zchan_fault input ip saddr " + addr(b) + " drop");
        nft(b, "add rule inet zchan_fault input ip saddr " + addr(a) + " drop");
    }
    /// Drops `percent` % of the packets between hosts a and b, each direction, at random.
    void lossy(int a, int b, int percent) {
        const std::string rule = " numgen random mod 100 '<' " + std::to_string(percent) + " drop";
        nft(a, "add rule inet zchan_fault input ip saddr " + addr(b) + rule);
        nft(b, "add rule inet zchan_fault input ip saddr " + addr(a) + rule);
    }
    /// Removes every rule in hosts a and b (heals cuts and lossy links between them).
    void heal(int a, int b) {
        nft(a, "flush chain inet zchan_fault input");
        nft(b, "flush chain inet zchan_fault input");
    }

    /// Full path of a tool in the usual sbin/bin directories, or "".
    [[nodiscard]] static std::string tool(const std::string& name) {
        for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
            const std::string p = dir + name;
            if (::access(p.c_str(), X_OK) == 0) return p;
        }
        return {};
    }

private:
    /// Runs a shell command quietly; true on exit status 0.
    static bool sh(const std::string& cmd) {
        const int st = std::system((cmd + " >/dev/null 2>&1").c_str());
        return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    void run(const std::string& ip_args) {
        const std::string cmd = tool("ip") + " " + ip_args;
        if (!sh(cmd)) throw std::runtime_error("netns_lab: failed: " + cmd);
    }
    void nft(int host, const std::string& args) {
        const std::string cmd =
            tool("ip") + " netns exec " + ns(host) + " " + tool("nft") + " " + args;
        if (!sh(cmd)) throw std::runtime_error("netns_lab: failed: " + cmd);
    }

    void teardown() noexcept {
        // Hosts first, then the hub: deleting a namespace deletes its veth ends and bridge.
        for (auto it = names_.rbegin(); it != names_.rend(); ++it) {
            (void)sh(tool("ip") + " netns del " + *it);
        }
        names_.clear();
    }

    /// Deletes "zct-<pid>-..." namespaces whose <pid> is not a running process.
    static void remove_stale() {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
            const std::string n = e.path().filename().string();
            if (n.rfind("zct-", 0) != 0) continue;
            const auto dash = n.find('-', 4);
            if (dash == std::string::npos) continue;
            const long pid = std::strtol(n.substr(4, dash - 4).c_str(), nullptr, 10);
            if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
            (void)sh(tool("ip") + " netns del " + n);
        }
    }

    std::string prefix_;
    std::vector<std::string> names_;  // every namespace made, hub first
    std::vector<std::string> hosts_;
};

}  // namespace zchan_test
