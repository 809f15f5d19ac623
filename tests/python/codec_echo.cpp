// codec_echo: the C++ side of python/tests/test_codec_cpp.py, which checks that the Python
// peer's codecs are byte-compatible with zchan's cereal encoding and type identities
// (docs/protocol.md §7.4, §13) for a value that nests most of the std types zchan supports.
//
// It prints "type <zchan::type_name<value>>", "sample <hex of encode_value(sample())>" and
// "listening on <endpoint>", serves "in" and "out" (both capacity 16), then moves every value
// received on "in" to "out" until "in" is closed, closes "out" and waits for a line on stdin
// (so that "out" outlives the test's range over it).
//
// Thread safety: one thread besides zchan's server thread.
#include <array>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <zchan/zchan.hpp>

namespace {

struct job {
    static constexpr const char* zchan_type_name = "myapp.job/1";
    std::int64_t id = 0;
    std::string name;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, name);
    }
};

using value = std::tuple<double, float, bool, std::vector<std::optional<std::int16_t>>,
                         std::vector<std::uint8_t>, std::map<std::string, std::uint32_t>,
                         std::pair<std::int8_t, std::uint64_t>, job, std::array<std::uint16_t, 2>>;

value sample() {
    return {1.5,
            -0.25F,
            true,
            {std::int16_t{-3}, std::nullopt, std::int16_t{7}},
            {0, 255, 10},
            {{"a", 1U}, {"bb", 4000000000U}},
            {std::int8_t{-128}, UINT64_MAX},
            job{42, "answer"},
            {65535, 1}};
}

}  // namespace

int main() {
    std::string bytes;
    zchan::encode_value(sample(), bytes);
    std::string hex;
    for (const unsigned char c : bytes) {
        char two[3];
        std::snprintf(two, sizeof two, "%02x", c);
        hex += two;
    }
    zchan::channel<value> in(16);
    zchan::channel<value> out(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("in", in);
    srv.serve("out", out);
    std::cout << "type " << zchan::type_name<value>::value() << "\nsample " << hex
              << "\nlistening on " << srv.endpoint() << std::endl;
    for (auto& v : in) out << v;
    out.close();
    std::string line;
    std::getline(std::cin, line);
    return 0;
}
