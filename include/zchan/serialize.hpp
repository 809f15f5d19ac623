// What a value type needs to cross a process boundary.
//
// A remote channel (zchan::dial, zchan::server::serve) carries values encoded
// with cereal's binary layout (docs/protocol.md §13). This header gives:
//
//   * zchan::serializable<T>: the concept dial/serve require. T must be a
//     default-constructible object type that zchan's cereal archives can save
//     and load (std types: include this header, which includes cereal's
//     headers for the common ones; user types: a `serialize(Archive&)` member
//     or free function, or save/load pairs, as cereal documents; an empty
//     struct, like Go's struct{}, needs none and encodes as no octets).
//   * zchan::type_name<T>::value(): the type identity string the handshake
//     compares (docs/protocol.md §7.4). Customise it by giving the struct a
//     `static constexpr const char* zchan_type_name = "...";` member, or by
//     specialising zchan::type_name<T>.
//   * zchan::encode_value / zchan::decode_value: the codec for one value, with
//     decoding bounded by the payload size (see zchan/detail/archive.hpp).
//
// Thread safety: everything here is stateless (type_name caches nothing that
// is not a function-local static); safe from any thread.
//
// Example:
//   struct job {
//       static constexpr const char* zchan_type_name = "myapp.job/1";
//       int id; std::string payload;
//       template <class Archive> void serialize(Archive& ar) { ar(id, payload); }
//   };
//   static_assert(zchan::serializable<job>);
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>
#include <cxxabi.h>

#include "zchan/detail/archive.hpp"
#include "zchan/errors.hpp"

namespace zchan {

namespace detail {

// An empty class with no serialization function at all (Go's struct{}): the
// archives allow cereal's empty-class elision, so it encodes as no octets. One
// with a function for one direction only is still rejected.
template <class T>
inline constexpr bool no_serializer =
    cereal::traits::detail::count_output_serializers<T, buffer_output_archive>::value == 0 &&
    cereal::traits::detail::count_input_serializers<T, bounded_input_archive>::value == 0;
template <class T>
inline constexpr bool elided_empty =
    std::conjunction_v<std::is_class<T>, std::is_empty<T>, std::bool_constant<no_serializer<T>>>;

template <class T>
inline constexpr bool cereal_ok =
    (cereal::traits::is_output_serializable<T, buffer_output_archive>::value &&
     cereal::traits::is_input_serializable<T, bounded_input_archive>::value) ||
    elided_empty<T>;

// cereal's container overloads accept any element type and fail deep inside
// when the element is not serializable; look through the std containers so
// the concept (and its readable message) catches that too. User structs are
// taken at their word: their serialize function is checked when instantiated.
template <class T>
struct deep_ok : std::bool_constant<cereal_ok<T>> {};
template <class... Ts>
inline constexpr bool all_deep_ok = (deep_ok<Ts>::value && ...);

template <class T, class A>
struct deep_ok<std::vector<T, A>>
    : std::bool_constant<cereal_ok<std::vector<T, A>> && all_deep_ok<T>> {};
template <class T, class A>
struct deep_ok<std::deque<T, A>>
    : std::bool_constant<cereal_ok<std::deque<T, A>> && all_deep_ok<T>> {};
template <class T, class A>
struct deep_ok<std::list<T, A>> : std::bool_constant<cereal_ok<std::list<T, A>> && all_deep_ok<T>> {
};
template <class T, std::size_t N>
struct deep_ok<std::array<T, N>>
    : std::bool_constant<cereal_ok<std::array<T, N>> && all_deep_ok<T>> {};
template <class T>
struct deep_ok<std::optional<T>>
    : std::bool_constant<cereal_ok<std::optional<T>> && all_deep_ok<T>> {};
template <class T, class D>
struct deep_ok<std::unique_ptr<T, D>>
    : std::bool_constant<cereal_ok<std::unique_ptr<T, D>> && all_deep_ok<T>> {};
template <class T>
struct deep_ok<std::shared_ptr<T>>
    : std::bool_constant<cereal_ok<std::shared_ptr<T>> && all_deep_ok<T>> {};
template <class A, class B>
struct deep_ok<std::pair<A, B>>
    : std::bool_constant<cereal_ok<std::pair<A, B>> && all_deep_ok<A, B>> {};
template <class... Ts>
struct deep_ok<std::tuple<Ts...>>
    : std::bool_constant<cereal_ok<std::tuple<Ts...>> && all_deep_ok<Ts...>> {};
template <class... Ts>
struct deep_ok<std::variant<Ts...>>
    : std::bool_constant<cereal_ok<std::variant<Ts...>> && all_deep_ok<Ts...>> {};
template <class K, class V, class C, class A>
struct deep_ok<std::map<K, V, C, A>>
    : std::bool_constant<cereal_ok<std::map<K, V, C, A>> && all_deep_ok<K, V>> {};
template <class K, class V, class H, class E, class A>
struct deep_ok<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<cereal_ok<std::unordered_map<K, V, H, E, A>> && all_deep_ok<K, V>> {};
template <class K, class C, class A>
struct deep_ok<std::set<K, C, A>>
    : std::bool_constant<cereal_ok<std::set<K, C, A>> && all_deep_ok<K>> {};
template <class K, class H, class E, class A>
struct deep_ok<std::unordered_set<K, H, E, A>>
    : std::bool_constant<cereal_ok<std::unordered_set<K, H, E, A>> && all_deep_ok<K>> {};

}  // namespace detail

/// True when values of T can be sent over a remote channel: a
/// default-constructible object type that zchan's cereal archives can save
/// and load (looking through std containers to their element types).
template <class T>
concept serializable = std::is_object_v<T> && !std::is_const_v<T> && !std::is_array_v<T> &&
                       std::default_initializable<T> && detail::deep_ok<T>::value;

namespace detail {

template <class T>
inline constexpr bool always_false = false;

/// Call from any function template that needs a serializable T: gives one
/// readable error instead of cereal's template backtrace.
template <class T>
constexpr void require_serializable() {
    static_assert(serializable<T>,
                  "zchan: this value type cannot cross a process boundary. A remote channel "
                  "needs a default-constructible type that cereal can serialize: give it a "
                  "`template <class Archive> void serialize(Archive&)` member (or save/load), "
                  "and make sure every std type it contains has its cereal/types/*.hpp header "
                  "included (zchan/serialize.hpp includes the common ones).");
}

/// Demangled typeid name (the last-resort type identity).
inline std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return (status == 0 && out) ? std::string(out.get()) : std::string(mangled);
}

template <class T>
concept has_member_type_name = requires {
    { T::zchan_type_name } -> std::convertible_to<const char*>;
};

}  // namespace detail

/// The type identity of T on the wire (docs/protocol.md §7.4). Two types
/// with the same identity MUST have the same cereal encoding.
///
/// Customise with a member `static constexpr const char* zchan_type_name`,
/// or a specialisation:
///   template <> struct zchan::type_name<my_type> {
///       static std::string value() { return "my_type/2"; }
///   };
/// Thread safety: value() is safe from any thread.
template <class T>
struct type_name {
    static std::string value() {
        if constexpr (detail::has_member_type_name<T>) {
            return std::string(T::zchan_type_name);
        } else {
            return detail::demangle(typeid(T).name());
        }
    }
};

namespace detail {
template <class... Ts>
std::string type_list() {
    std::string out;
    ((out += (out.empty() ? "" : ","), out += type_name<Ts>::value()), ...);
    return out;
}
template <class... Ts>
std::string generic(std::string_view name) {
    return std::string(name) + "<" + type_list<Ts...>() + ">";
}
}  // namespace detail

// Arithmetic types are named by kind and size, so that int and int32_t (and
// long and long long on LP64) agree: they encode identically.
template <class T>
requires std::is_arithmetic_v<T>
struct type_name<T> {
    static std::string value() {
        if constexpr (std::is_same_v<T, bool>) {
            return "bool";
        } else if constexpr (std::is_same_v<T, char>) {
            return "char";
        } else if constexpr (std::is_same_v<T, wchar_t>) {
            return "wchar" + std::to_string(sizeof(T) * 8);
        } else if constexpr (std::is_same_v<T, char8_t>) {
            return "char8";
        } else if constexpr (std::is_same_v<T, char16_t>) {
            return "char16";
        } else if constexpr (std::is_same_v<T, char32_t>) {
            return "char32";
        } else if constexpr (std::is_floating_point_v<T>) {
            // long double is 80-bit extended on x86 but stored in 16 bytes.
            // Appended, not `"f" + std::to_string(...)`: GCC 12 reports a false
            // -Wrestrict for a literal prepended to a temporary (GCC PR 105329).
            std::string name = "f";
            name += std::to_string(std::is_same_v<T, long double> ? 80 : sizeof(T) * 8);
            return name;
        } else {
            std::string name = std::is_signed_v<T> ? "i" : "u";
            name += std::to_string(sizeof(T) * 8);  // appended: see above
            return name;
        }
    }
};

template <class C, class Tr, class A>
struct type_name<std::basic_string<C, Tr, A>> {
    static std::string value() {
        if constexpr (std::is_same_v<C, char>) {
            return "string";
        } else {
            return detail::generic<C>("basic_string");
        }
    }
};
template <class T, class A>
struct type_name<std::vector<T, A>> {
    static std::string value() { return detail::generic<T>("vector"); }
};
template <class T, class A>
struct type_name<std::deque<T, A>> {
    static std::string value() { return detail::generic<T>("deque"); }
};
template <class T, class A>
struct type_name<std::list<T, A>> {
    static std::string value() { return detail::generic<T>("list"); }
};
template <class T, std::size_t N>
struct type_name<std::array<T, N>> {
    static std::string value() {
        return "array<" + type_name<T>::value() + "," + std::to_string(N) + ">";
    }
};
template <class T>
struct type_name<std::optional<T>> {
    static std::string value() { return detail::generic<T>("optional"); }
};
template <class T, class D>
struct type_name<std::unique_ptr<T, D>> {
    static std::string value() { return detail::generic<T>("unique_ptr"); }
};
template <class T>
struct type_name<std::shared_ptr<T>> {
    static std::string value() { return detail::generic<T>("shared_ptr"); }
};
template <class A, class B>
struct type_name<std::pair<A, B>> {
    static std::string value() { return detail::generic<A, B>("pair"); }
};
template <class... Ts>
struct type_name<std::tuple<Ts...>> {
    static std::string value() { return detail::generic<Ts...>("tuple"); }
};
template <class... Ts>
struct type_name<std::variant<Ts...>> {
    static std::string value() { return detail::generic<Ts...>("variant"); }
};
template <class K, class V, class C, class A>
struct type_name<std::map<K, V, C, A>> {
    static std::string value() { return detail::generic<K, V>("map"); }
};
template <class K, class V, class H, class E, class A>
struct type_name<std::unordered_map<K, V, H, E, A>> {
    static std::string value() { return detail::generic<K, V>("unordered_map"); }
};
template <class K, class C, class A>
struct type_name<std::set<K, C, A>> {
    static std::string value() { return detail::generic<K>("set"); }
};
template <class K, class H, class E, class A>
struct type_name<std::unordered_set<K, H, E, A>> {
    static std::string value() { return detail::generic<K>("unordered_set"); }
};

/// Shorthand for zchan::type_name<T>::value().
template <class T>
[[nodiscard]] std::string type_identity() {
    return type_name<T>::value();
}

/// Appends the encoding of `v` (docs/protocol.md §13) to `out`.
/// Throws: whatever T's serialize function throws (encoding runs on the
/// caller's thread, so a throwing user serializer reaches the caller).
template <serializable T>
void encode_value(const T& v, std::string& out) {
    detail::buffer_output_archive ar(out);
    ar(v);
}

/// Decodes exactly one T from [data, data+size) into `out`.
/// Returns: an empty error_code on success; errc::decode_error if the bytes
/// are truncated, claim more than they hold, nest too deeply, leave trailing
/// bytes, or T's load throws. Never throws; never allocates more than the
/// value `size` bytes could describe (zchan/detail/archive.hpp).
template <serializable T>
[[nodiscard]] std::error_code decode_value(const void* data, std::size_t size,
                                           std::optional<T>& out) noexcept {
    try {
        T v{};
        detail::bounded_input_archive ar(data, size);
        ar(v);
        if (ar.remaining() != 0) return make_error_code(errc::decode_error);
        out.emplace(std::move(v));
        return {};
    } catch (...) {
        // cereal::Exception, std::bad_alloc, or anything T's load throws: the
        // bytes are not a T. The caller counts and reports it.
        return make_error_code(errc::decode_error);
    }
}

/// A value a home keeps as the bytes it arrived as, without decoding it: the
/// values of a hub's channels (zchan/hub.hpp, protocol.md §17). Its payload
/// codec is the identity (the overloads below, which overload resolution
/// prefers to the templates above), so a hub relays any value type; its type
/// identity is per channel, not per C++ type. It is deliberately not
/// serializable: it cannot be dialed or served with zchan::server::serve.
struct opaque_value {
    std::string bytes;  ///< one value's payload, exactly as on the wire (§13)
};

/// The identity codec of opaque_value: appends the bytes as they are.
inline void encode_value(const opaque_value& v, std::string& out) { out.append(v.bytes); }

/// The identity codec of opaque_value: any bytes are a value (the dialers,
/// which share the channel's type identity, decode them).
[[nodiscard]] inline std::error_code decode_value(const void* data, std::size_t size,
                                                  std::optional<opaque_value>& out) noexcept {
    try {
        out.emplace().bytes.assign(static_cast<const char*>(data), size);
        return {};
    } catch (...) {  // std::bad_alloc
        out.reset();
        return make_error_code(errc::decode_error);
    }
}

}  // namespace zchan
