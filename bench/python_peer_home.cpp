// python_peer_home: the C++ end of bench/run_python (the Python peer against raw pyzmq).
//
//   python_peer_home zchan-consume N   serves "s" (std::string, capacity 1024) and receives N
//                                      values locally: a Python producer dials and sends them
//   python_peer_home zchan-produce N   serves "s" and sends N 64-byte strings locally, then
//                                      closes it: a Python consumer dials and ranges over it
//   python_peer_home raw-pull N        binds a PULL socket and receives N messages
//   python_peer_home raw-push N        binds a PUSH socket and sends N 64-byte messages
//
// Each binds tcp://127.0.0.1:*, prints "listening on ENDPOINT", does its part and prints
// "done N", then waits for a line on stdin (the driver sends it once its side has everything,
// so that nothing buffered here dies with the process). Timing is the Python side's.
//
// Thread safety: single-threaded besides zchan's own server thread.
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include <zchan/zchan.hpp>

namespace {

constexpr std::size_t value_size = 64;

int zchan_side(bool produce, long n) {
    zchan::channel<std::string> ch(1024);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("s", ch);
    std::cout << "listening on " << srv.endpoint() << std::endl;
    if (produce) {
        const std::string v(value_size, 'x');
        for (long i = 0; i < n; i++) ch.send(v);
        ch.close();
    } else {
        for (long i = 0; i < n; i++) {
            if (!ch.recv()) return 1;
        }
    }
    std::cout << "done " << n << std::endl;
    // Values still buffered here, and the last answers, would die with the process: the
    // driver writes a line once its side has everything.
    std::string line;
    std::getline(std::cin, line);
    return 0;
}

int raw_side(bool push, long n) {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, push ? zmq::socket_type::push : zmq::socket_type::pull);
    s.set(zmq::sockopt::linger, 5000);
    s.bind("tcp://127.0.0.1:*");
    std::cout << "listening on " << s.get(zmq::sockopt::last_endpoint) << std::endl;
    const std::string v(value_size, 'x');
    for (long i = 0; i < n; i++) {
        if (push) {
            s.send(zmq::buffer(v), zmq::send_flags::none);
        } else {
            zmq::message_t m;
            if (!s.recv(m)) return 1;
        }
    }
    std::cout << "done " << n << std::endl;
    std::string line;
    std::getline(std::cin, line);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: python_peer_home zchan-consume|zchan-produce|raw-pull|raw-push N\n";
        return 2;
    }
    const std::string_view mode = argv[1];
    const long n = std::strtol(argv[2], nullptr, 10);
    if (mode == "zchan-consume") return zchan_side(false, n);
    if (mode == "zchan-produce") return zchan_side(true, n);
    if (mode == "raw-pull") return raw_side(false, n);
    if (mode == "raw-push") return raw_side(true, n);
    std::cerr << "python_peer_home: unknown mode " << mode << "\n";
    return 2;
}
