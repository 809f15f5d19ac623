// libFuzzer target: the ZCHAN/1 frame decoder (docs/protocol.md §4-§6).
// Every input must decode or be rejected without crashing, reading out of
// bounds or allocating; an accepted frame must re-encode to the same bytes
// (the codec accepts exactly what it produces).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "../src/codec.hpp"

namespace wire = zchan::detail::wire;

namespace {
/// The entries of VALUES or SEND_MANY, walked with values_reader.
void append_entries(std::string& out, const wire::frame& f) {
    wire::values_reader r(f);
    for (std::uint32_t i = 0; i < f.count; ++i) {
        const auto v = r.next();
        const auto len = static_cast<std::uint32_t>(v.size());
        for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((len >> (8 * b)) & 0xff));
        out.append(reinterpret_cast<const char*>(v.data()), v.size());
    }
}

std::string reencode(const wire::frame& f) {
    std::string out;
    switch (f.h.type) {
        case wire::msg::hello:
            wire::encode_hello(out, f.h.id, f.h.flags, f.hello);
            break;
        case wire::msg::welcome:
            wire::encode_welcome(out, f.h.id, f.h.flags, f.welcome);
            break;
        case wire::msg::error:
            wire::encode_error(out, f.h.channel, f.h.id, f.error.code, f.error.text);
            break;
        case wire::msg::status:
            wire::encode_status(out, f.h.channel, f.h.id, f.status);
            break;
        case wire::msg::ack:
            wire::encode_header(out, f.h);
            out.append(reinterpret_cast<const char*>(f.ack_seqs.data()), f.ack_seqs.size());
            break;
        case wire::msg::send:
            wire::begin_send(out, f.h.channel, f.h.id, f.h.flags);
            out.append(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
            break;
        case wire::msg::value:
            wire::begin_value(out, f.h.channel, f.h.id, f.delivery_seq);
            out.append(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
            break;
        case wire::msg::recv_many:  // §8.8
            wire::encode_recv_many(out, f.h.channel, f.h.id, f.count);
            break;
        case wire::msg::values: {  // §8.8: entries walked with values_reader
            const std::size_t start = out.size();
            wire::begin_values(out, f.h.channel, f.h.id, f.delivery_seq);
            append_entries(out, f);
            wire::finish_values(out, start, f.count);
            break;
        }
        case wire::msg::send_many: {  // §9.1: entries as in VALUES
            const std::size_t start = out.size();
            wire::begin_send_many(out, f.h.channel, f.h.id);
            append_entries(out, f);
            wire::finish_send_many(out, start, f.count);
            break;
        }
        case wire::msg::credit:  // §9.1
            wire::encode_credit(out, f.h.channel, f.h.id, f.confirmed);
            break;
        case wire::msg::poll: {  // §8.9
            std::vector<wire::poll_case> cases(f.count);
            for (std::uint32_t i = 0; i < f.count; ++i) {
                cases[i] = {f.poll_channel(i), f.poll_case_op(i)};
            }
            wire::encode_poll(out, f.h.channel, f.h.id, cases);
            break;
        }
        case wire::msg::recv:  // §8.6.1: SELECT carries a tag
        case wire::msg::watch_send:
            wire::encode_wait_request(out, f.h.type, f.h.channel, f.h.id,
                                      static_cast<std::uint16_t>(f.h.flags & ~wire::flag::select),
                                      f.select_tag);
            break;
        default:
            wire::encode_header(out, f.h);
            break;
    }
    return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const unsigned char> in(data, size);
    for (auto side : {wire::side::home, wire::side::peer}) {
        wire::frame f;
        if (wire::decode(in, side, f, 1u << 16)) continue;
        const std::string again = reencode(f);
        if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
    }
    return 0;
}
