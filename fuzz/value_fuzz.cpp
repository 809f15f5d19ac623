// libFuzzer target: the bounded cereal value decoder (docs/protocol.md §13,
// include/zchan/detail/archive.hpp). The first byte picks a value type; the
// rest is the payload. Run with -malloc_limit_mb so that any allocation the
// payload's size tags could force beyond the bound is a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "zchan/serialize.hpp"

namespace {
struct job {
    int id = 0;
    std::string name;
    std::vector<double> weights;
    std::optional<std::string> note;
    std::map<std::string, std::vector<std::uint8_t>> attrs;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, name, weights, note, attrs);
    }
};

struct tree {
    std::string label;
    std::vector<tree> kids;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(label, kids);
    }
};

/// `canonical`: every value has exactly one encoding. Not so for types with
/// associative containers (duplicate keys decode, then re-encode once).
template <class T, bool canonical = true>
void probe(const std::uint8_t* data, std::size_t size) {
    std::optional<T> out;
    if (!zchan::decode_value(data, size, out)) {
        // Accepted: it must re-encode, to exactly the input size when the
        // encoding is canonical (no trailing bytes were accepted).
        std::string again;
        zchan::encode_value(*out, again);
        if constexpr (canonical) {
            if (again.size() != size) std::abort();
        }
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t* p = data + 1;
    const std::size_t n = size - 1;
    switch (data[0] % 10) {
        case 0:
            probe<std::string>(p, n);
            break;
        case 1:
            probe<std::vector<std::string>>(p, n);
            break;
        case 2:
            probe<std::vector<std::vector<int>>>(p, n);
            break;
        case 3:
            probe<std::map<std::string, std::vector<std::string>>, false>(p, n);
            break;
        case 4:
            probe<job, false>(p, n);
            break;
        case 5:
            probe<tree>(p, n);
            break;
        case 6:
            probe<std::unordered_set<std::string>, false>(p, n);
            break;
        case 7:
            probe<std::tuple<std::deque<int>, std::list<std::string>, std::vector<bool>>>(p, n);
            break;
        case 8:
            probe<std::unique_ptr<std::vector<double>>>(p, n);
            break;
        default:
            probe<std::pair<std::optional<std::int64_t>, std::u32string>>(p, n);
            break;
    }
    return 0;
}
