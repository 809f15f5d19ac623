// The values the worker_pool processes exchange. Any struct with a cereal
// serialize function can cross a process boundary; zchan_type_name is the
// identity both ends compare at dial (a mismatch is zchan::type_mismatch).
#pragma once

#include <cctype>
#include <string>

namespace worker_pool {

struct job {
    static constexpr const char* zchan_type_name = "zchan.examples.worker_pool.job/1";
    int id = 0;
    std::string payload;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, payload);
    }
};

struct result {
    static constexpr const char* zchan_type_name = "zchan.examples.worker_pool.result/1";
    int id = 0;          ///< the job's id
    std::string worker;  ///< who did it
    std::string output;  ///< work(payload)

    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, worker, output);
    }
};

/// The "work": upper-cases the payload. The dispatcher recomputes it to check results.
inline std::string work(std::string payload) {
    for (char& c : payload) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return payload;
}

}  // namespace worker_pool
