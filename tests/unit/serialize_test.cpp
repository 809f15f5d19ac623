// zchan/serialize.hpp: the serializable concept and the type identity
// strings the handshake compares (protocol.md §7.4). Value decoding is
// tested in codec_test.cpp.
#include "zchan/serialize.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

namespace {

struct with_member_name {
    static constexpr const char* zchan_type_name = "acme.order/2";
    int qty = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(qty);
    }
};

struct specialised {
    int x = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(x);
    }
};

struct plain_struct {
    int x = 0;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(x);
    }
};

struct not_serializable {
    int x = 0;
};

struct empty_tag {};  // Go's struct{}: no members, no serialize function

struct split_save_load {
    std::string s;
    template <class Archive>
    void save(Archive& ar) const {
        ar(s);
    }
    template <class Archive>
    void load(Archive& ar) {
        ar(s);
    }
};

}  // namespace

template <>
struct zchan::type_name<specialised> {
    static std::string value() { return "specialised!"; }
};

namespace {

TEST(SerializeUnit, ConceptAcceptsCerealTypesAndRejectsOthers) {
    static_assert(zchan::serializable<int>);
    static_assert(zchan::serializable<std::string>);
    static_assert(zchan::serializable<std::vector<std::string>>);
    static_assert(zchan::serializable<std::map<std::string, std::vector<double>>>);
    static_assert(zchan::serializable<std::optional<int>>);
    static_assert(zchan::serializable<std::unique_ptr<std::string>>);  // move-only
    static_assert(zchan::serializable<std::tuple<int, std::string, bool>>);
    static_assert(zchan::serializable<with_member_name>);
    static_assert(zchan::serializable<split_save_load>);
    static_assert(!zchan::serializable<not_serializable>);
    // Zero-size values (codec_test.cpp checks that they encode and decode).
    static_assert(zchan::serializable<std::array<int, 0>>);
    static_assert(zchan::serializable<std::array<std::string, 0>>);
    static_assert(zchan::serializable<empty_tag>);
    static_assert(zchan::serializable<std::vector<empty_tag>>);
    static_assert(zchan::serializable<std::tuple<>>);
    static_assert(!zchan::serializable<std::vector<not_serializable>>);
    static_assert(!zchan::serializable<const int>);
    static_assert(!zchan::serializable<int&>);
    static_assert(!zchan::serializable<void>);
    SUCCEED();
}

TEST(SerializeUnit, ArithmeticNamesFollowKindAndSize) {
    EXPECT_EQ(zchan::type_identity<int>(), "i32");
    EXPECT_EQ(zchan::type_identity<std::int32_t>(), "i32");
    EXPECT_EQ(zchan::type_identity<long long>(), "i64");
    EXPECT_EQ(zchan::type_identity<std::int64_t>(), "i64");
    EXPECT_EQ(zchan::type_identity<unsigned char>(), "u8");
    EXPECT_EQ(zchan::type_identity<std::uint16_t>(), "u16");
    EXPECT_EQ(zchan::type_identity<bool>(), "bool");
    EXPECT_EQ(zchan::type_identity<char>(), "char");
    EXPECT_EQ(zchan::type_identity<float>(), "f32");
    EXPECT_EQ(zchan::type_identity<double>(), "f64");
}

TEST(SerializeUnit, StdTypesComposeTheirNames) {
    EXPECT_EQ(zchan::type_identity<std::string>(), "string");
    EXPECT_EQ(zchan::type_identity<std::vector<int>>(), "vector<i32>");
    EXPECT_EQ((zchan::type_identity<std::map<std::string, std::vector<double>>>()),
              "map<string,vector<f64>>");
    EXPECT_EQ((zchan::type_identity<std::tuple<int, bool, std::string>>()),
              "tuple<i32,bool,string>");
    EXPECT_EQ((zchan::type_identity<std::pair<char, float>>()), "pair<char,f32>");
    EXPECT_EQ(zchan::type_identity<std::optional<std::uint64_t>>(), "optional<u64>");
    EXPECT_EQ(zchan::type_identity<std::unique_ptr<int>>(), "unique_ptr<i32>");
    EXPECT_EQ((zchan::type_identity<std::array<int, 3>>()), "array<i32,3>");
}

TEST(SerializeUnit, UsersNameTheirTypes) {
    EXPECT_EQ(zchan::type_identity<with_member_name>(), "acme.order/2");
    EXPECT_EQ(zchan::type_identity<specialised>(), "specialised!");
    EXPECT_EQ(zchan::type_identity<std::vector<with_member_name>>(), "vector<acme.order/2>");
    // The fallback is the demangled name.
    EXPECT_NE(zchan::type_identity<plain_struct>().find("plain_struct"), std::string::npos);
}

}  // namespace
