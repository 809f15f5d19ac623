#include "net_context.hpp"

#include <random>

namespace zchan::detail {

zmq::context_t& net_context() {
    static auto* ctx = new zmq::context_t(1);  // see the header: never destroyed
    return *ctx;
}

std::array<std::uint8_t, 16> random_instance_id() {
    std::random_device rd;
    std::array<std::uint8_t, 16> id{};
    for (auto& b : id) b = static_cast<std::uint8_t>(rd());
    id[0] |= 1;  // never all zero
    return id;
}

}  // namespace zchan::detail
