// Error codes of zchan's asynchronous operations (zchan/asio.hpp), in their
// own category so that they compare equal to nothing else. A lost peer keeps
// the transport's code (zchan::errc::peer_lost); a cancelled operation
// reports Asio's operation_aborted.
//
// Thread safety: immutable after construction.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

namespace zchan {

enum class async_errc {
    channel_closed = 1,  ///< a send on a closed channel (the blocking send throws channel_closed)
};

namespace detail {
class async_errc_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "zchan.async"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<async_errc>(code)) {
            case async_errc::channel_closed:
                return "send on closed channel";
        }
        return "unknown zchan.async error";
    }
};
}  // namespace detail

/// The category of zchan::async_errc codes.
inline const std::error_category& async_category() noexcept {
    static const detail::async_errc_category category;
    return category;
}

inline std::error_code make_error_code(async_errc e) noexcept {
    return {static_cast<int>(e), async_category()};
}

}  // namespace zchan

template <>
struct std::is_error_code_enum<zchan::async_errc> : std::true_type {};
