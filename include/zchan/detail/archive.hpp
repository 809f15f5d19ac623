// cereal archives for zchan's wire values (docs/protocol.md §13).
//
// buffer_output_archive appends cereal's binary layout to a std::string (no
// std::ostream in the way); bounded_input_archive reads the same layout from a
// byte span and is safe on hostile input:
//
//   Invariant (allocation bound): before any container is sized, the number of
//   elements its size tag claims has been checked against the bytes left in
//   the span. cereal's stock BinaryInputArchive resizes a std::vector or
//   std::string to whatever its 8-byte size tag says before reading a single
//   element (24 bytes claiming 2^28 strings allocate 8 GB). Here:
//     * every size tag must be <= bytes left (each element of a container in
//       this layout takes at least one byte, except empty classes);
//     * containers that cereal pre-sizes (vector, basic_string, deque, list,
//       forward_list, unordered_set) are loaded by the overloads below, which
//       either check `n * sizeof(elem) <= bytes left` (contiguous arithmetic
//       data) or grow one decoded element at a time, so memory grows only with
//       bytes actually consumed;
//     * nesting depth is bounded (recursive types cannot exhaust the stack).
//   Decoding N bytes therefore never allocates more than the value those N
//   bytes could legitimately describe.
//
// Failures throw cereal::Exception from inside the archive; the codec catches
// them at the decode boundary and returns an error code, so no exception ever
// leaves an I/O thread (see src/codec.hpp).
//
// Layout: identical to cereal::BinaryOutputArchive on a little-endian host
// (sizes are uint64 size tags); big-endian hosts are rejected at compile time.
//
// Thread safety: an archive object is used by one thread at a time; distinct
// archives are independent.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <forward_list>
#include <list>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include <cereal/cereal.hpp>

static_assert(std::endian::native == std::endian::little,
              "zchan: protocol version 1 supports little-endian hosts only (docs/protocol.md §13)");

namespace zchan::detail {

/// Writes cereal's binary layout by appending to a string.
class buffer_output_archive
    : public cereal::OutputArchive<buffer_output_archive, cereal::AllowEmptyClassElision> {
public:
    explicit buffer_output_archive(std::string& out)
        : cereal::OutputArchive<buffer_output_archive, cereal::AllowEmptyClassElision>(this),
          out_(out) {}

    /// Appends [data, data+size). A null `data` is fine only with size 0 (an
    /// empty container's data()); with bytes to copy it throws instead of
    /// reading address 0.
    // NOLINTNEXTLINE(readability-identifier-naming): the name cereal's archives use
    void saveBinary(const void* data, std::size_t size) {
        if (size == 0) return;
        if (data == nullptr) throw cereal::Exception("zchan: binary data without storage");
        out_.append(static_cast<const char*>(data), size);
    }

private:
    std::string& out_;
};

/// Reads cereal's binary layout from [data, data+size), rejecting any length
/// that the remaining bytes cannot back (see the invariant at the top).
class bounded_input_archive
    : public cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision> {
public:
    /// Nested cereal items (each object, size tag and binary blob counts one
    /// level); about half as many levels of C++ type nesting.
    static constexpr std::size_t max_depth = 256;

    bounded_input_archive(const void* data, std::size_t size)
        : cereal::InputArchive<bounded_input_archive, cereal::AllowEmptyClassElision>(this),
          cur_(static_cast<const unsigned char*>(data)),
          end_(cur_ + size) {}

    /// Copies `size` octets to `out`; as saveBinary, a null `out` is fine only
    /// with size 0.
    // NOLINTNEXTLINE(readability-identifier-naming): the name cereal's archives use
    void loadBinary(void* out, std::size_t size) {
        if (size == 0) return;
        if (size > remaining()) throw cereal::Exception("zchan: value truncated");
        if (out == nullptr) throw cereal::Exception("zchan: binary data without storage");
        std::memcpy(out, cur_, size);
        cur_ += size;
    }

    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - cur_);
    }

    /// Reads a size tag and checks it against the bytes left, assuming each
    /// element takes at least `min_elem_bytes` bytes on the wire.
    std::uint64_t load_size(std::size_t min_elem_bytes = 1) {
        std::uint64_t n = 0;
        loadBinary(&n, sizeof n);
        check_size(n, min_elem_bytes);
        return n;
    }

    void check_size(std::uint64_t n, std::size_t min_elem_bytes) const {
        if (min_elem_bytes != 0 && n > remaining() / min_elem_bytes) {
            throw cereal::Exception("zchan: size tag larger than the bytes left");
        }
    }

    void enter() {
        if (++depth_ > max_depth) throw cereal::Exception("zchan: value nested too deeply");
    }
    void leave() noexcept { --depth_; }

private:
    const unsigned char* cur_;
    const unsigned char* end_;
    std::size_t depth_ = 0;
};

// ---- primitives (the same set cereal/archives/binary.hpp defines) ----------

template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(buffer_output_archive& ar, const T& t) {
    ar.saveBinary(std::addressof(t), sizeof(t));
}

template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, T& t) {
    ar.loadBinary(std::addressof(t), sizeof(t));
    if constexpr (std::is_same_v<T, bool>) {
        // Any byte other than 0/1 would be an invalid bool object (UB to read).
        unsigned char b = 0;
        std::memcpy(&b, std::addressof(t), 1);
        if (b > 1) throw cereal::Exception("zchan: invalid bool");
    }
}

template <class Archive, class T>
CEREAL_ARCHIVE_RESTRICT(bounded_input_archive, buffer_output_archive)
CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
    ar(t.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(buffer_output_archive& ar, const cereal::SizeTag<T>& t) {
    const std::uint64_t n = t.size;
    ar.saveBinary(&n, sizeof n);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::SizeTag<T>& t) {
    t.size = static_cast<std::remove_cvref_t<decltype(t.size)>>(ar.load_size());
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(buffer_output_archive& ar, const cereal::BinaryData<T>& bd) {
    ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, cereal::BinaryData<T>& bd) {
    ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

// A zero-size std::array has no value to carry: no octets. cereal would save an
// arithmetic one as binary_data(array.data(), sizeof(array)), which is
// (nullptr, 1) for N == 0 (an empty std::array still occupies one byte), and
// load it the same way. These overloads are more specialised than cereal's.
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(buffer_output_archive& /*ar*/, const std::array<T, 0>& /*a*/) {}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& /*ar*/, std::array<T, 0>& /*a*/) {}

// Depth accounting: cereal calls prologue/epilogue around every item it
// processes; these are more specialised than cereal's generic no-ops.
template <class T>
void prologue(bounded_input_archive& ar, const T& /*unused*/) {
    ar.enter();
}
template <class T>
void epilogue(bounded_input_archive& ar, const T& /*unused*/) {
    ar.leave();
}
template <class T>
void prologue(buffer_output_archive& /*ar*/, const T& /*unused*/) {}
template <class T>
void epilogue(buffer_output_archive& /*ar*/, const T& /*unused*/) {}

// ---- containers cereal would pre-size from an untrusted tag ----------------
// Each overload is more specialised than cereal's generic one (concrete archive
// type), so overload resolution picks it for bounded_input_archive only. They
// read the same layout cereal writes.

/// Contiguous arithmetic data: the whole payload must be present.
template <class T, class A>
requires(std::is_arithmetic_v<T> &&
         !std::is_same_v<T, bool>) void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                                                                  std::vector<T, A>& v) {
    const auto n = ar.load_size(sizeof(T));
    v.resize(static_cast<std::size_t>(n));
    ar.loadBinary(v.data(), static_cast<std::size_t>(n) * sizeof(T));
}

template <class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::vector<bool, A>& v) {
    const auto n = ar.load_size(1);  // one byte per bool: n <= bytes left
    v.clear();
    v.reserve(static_cast<std::size_t>(n));
    for (std::uint64_t i = 0; i < n; ++i) {
        bool b = false;
        ar(b);
        v.push_back(b);
    }
}

namespace archive_detail {
/// Appends elements one decoded element at a time: memory follows the bytes
/// consumed, never the claimed count.
template <class Seq>
void load_growing(bounded_input_archive& ar, Seq& s) {
    const auto n = ar.load_size(1);
    s.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
        s.emplace_back();
        ar(s.back());
    }
}
}  // namespace archive_detail

template <class T, class A>
requires(!std::is_arithmetic_v<T>) void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                                                                  std::vector<T, A>& v) {
    archive_detail::load_growing(ar, v);
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::deque<T, A>& d) {
    archive_detail::load_growing(ar, d);
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::list<T, A>& l) {
    archive_detail::load_growing(ar, l);
}

template <class T, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::forward_list<T, A>& l) {
    const auto n = ar.load_size(1);
    l.clear();
    auto tail = l.before_begin();
    for (std::uint64_t i = 0; i < n; ++i) {
        tail = l.emplace_after(tail);
        ar(*tail);
    }
}

template <class CharT, class Traits, class Alloc>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                               std::basic_string<CharT, Traits, Alloc>& s) {
    const auto n = ar.load_size(sizeof(CharT));
    s.resize(static_cast<std::size_t>(n));
    ar.loadBinary(s.data(), static_cast<std::size_t>(n) * sizeof(CharT));
}

template <class K, class H, class KE, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar, std::unordered_set<K, H, KE, A>& set) {
    const auto n = ar.load_size(1);
    set.clear();  // no reserve(n): buckets would follow the claimed count
    for (std::uint64_t i = 0; i < n; ++i) {
        K key{};
        ar(key);
        set.emplace(std::move(key));
    }
}

template <class K, class H, class KE, class A>
void CEREAL_LOAD_FUNCTION_NAME(bounded_input_archive& ar,
                               std::unordered_multiset<K, H, KE, A>& set) {
    const auto n = ar.load_size(1);
    set.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
        K key{};
        ar(key);
        set.emplace(std::move(key));
    }
}

}  // namespace zchan::detail

CEREAL_REGISTER_ARCHIVE(zchan::detail::buffer_output_archive)
CEREAL_REGISTER_ARCHIVE(zchan::detail::bounded_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(zchan::detail::bounded_input_archive,
                            zchan::detail::buffer_output_archive)
