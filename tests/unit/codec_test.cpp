// Frame codec (src/codec.hpp, protocol.md §4-§6) and value codec
// (zchan/serialize.hpp, protocol.md §13): round trips, every malformed frame
// kind rejected with its own error, and hostile cereal payloads rejected
// without large allocations.
//
// The allocation checks replace global operator new in this test binary and
// record the largest single request made while a probe is active.

// GCC flags free() in the replaced operator delete as mismatched with the
// replaced operator new wherever it inlines both; they are a matched pair here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include "../../src/codec.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/detail/net_link.hpp"
#include "zchan/serialize.hpp"

// ---- allocation probe --------------------------------------------------------

namespace {
std::atomic<bool> probe_on{false};
std::atomic<std::size_t> probe_largest{0};
std::atomic<std::size_t> probe_total{0};

void note_alloc(std::size_t n) noexcept {
    if (!probe_on.load(std::memory_order_relaxed)) return;
    probe_total.fetch_add(n, std::memory_order_relaxed);
    std::size_t prev = probe_largest.load(std::memory_order_relaxed);
    while (n > prev && !probe_largest.compare_exchange_weak(prev, n)) {
    }
}
}  // namespace

void* operator new(std::size_t n) {
    note_alloc(n);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    note_alloc(n);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace wire = zchan::detail::wire;
using wire::codec_errc;

/// Runs `fn` with the probe on; returns the total bytes requested from operator new.
template <class F>
std::size_t allocated_by(F&& fn) {
    probe_largest = 0;
    probe_total = 0;
    probe_on = true;
    fn();
    probe_on = false;
    return probe_total.load();
}

wire::bytes as_bytes(const std::string& s) {
    return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

std::error_code decode_at(const std::string& s, wire::side side, wire::frame& f,
                          std::size_t max_frame = wire::default_max_frame) {
    return wire::decode(as_bytes(s), side, f, max_frame);
}

wire::instance_id some_instance() {
    wire::instance_id id{};
    for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(i + 1);
    return id;
}

std::string hello_frame(std::string_view name = "jobs", std::string_view type = "string") {
    wire::hello_body b;
    b.prefetch = 7;
    b.send_window = 9;
    b.heartbeat_ms = 500;
    b.instance = some_instance();
    b.name = name;
    b.type_name = type;
    std::string out;
    wire::encode_hello(out, 0xfeedULL, 0, b);
    return out;
}

std::string simple(wire::msg m, std::uint32_t channel = 3, std::uint64_t id = 42,
                   std::uint16_t flags = 0) {
    std::string out;
    wire::encode_header(out, wire::header{wire::version, m, flags, channel, id});
    return out;
}

void put_u64(std::string& s, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// ---- round trips ----------------------------------------------------------------

TEST(CodecUnit, HelloRoundTripsEveryField) {
    const auto bytes = hello_frame("jobs", "vector<i32>");
    ASSERT_EQ(bytes.size(), wire::hello_fixed_size + 4 + 11);
    wire::frame f;
    ASSERT_FALSE(decode_at(bytes, wire::side::home, f));
    EXPECT_EQ(f.h.type, wire::msg::hello);
    EXPECT_EQ(f.h.id, 0xfeedULL);
    EXPECT_EQ(f.h.channel, 0u);
    EXPECT_EQ(f.hello.min_version, 1);
    EXPECT_EQ(f.hello.max_version, 1);
    EXPECT_EQ(f.hello.prefetch, 7u);
    EXPECT_EQ(f.hello.send_window, 9u);
    EXPECT_EQ(f.hello.heartbeat_ms, 500u);
    EXPECT_EQ(f.hello.instance, some_instance());
    EXPECT_EQ(f.hello.name, "jobs");
    EXPECT_EQ(f.hello.type_name, "vector<i32>");
    EXPECT_EQ(wire::negotiate(f.hello), 1);
}

TEST(CodecUnit, WelcomeRoundTripsEveryField) {
    wire::welcome_body b;
    b.channel = 5;
    b.heartbeat_ms = 1000;
    b.capacity = 1ULL << 40;
    b.timeout_ms = 3000;
    b.max_frame = 1 << 20;
    b.prefetch = 3;
    b.send_window = 4;
    b.instance = some_instance();
    std::string out;
    wire::encode_welcome(out, 77, wire::flag::resume, b);
    ASSERT_EQ(out.size(), wire::welcome_size);
    wire::frame f;
    ASSERT_FALSE(decode_at(out, wire::side::peer, f));
    EXPECT_EQ(f.h.id, 77u);
    EXPECT_EQ(f.h.flags, wire::flag::resume);
    EXPECT_EQ(f.welcome.channel, 5u);
    EXPECT_EQ(f.welcome.capacity, 1ULL << 40);
    EXPECT_EQ(f.welcome.timeout_ms, 3000u);
    EXPECT_EQ(f.welcome.max_frame, 1u << 20);
    EXPECT_EQ(f.welcome.prefetch, 3u);
    EXPECT_EQ(f.welcome.send_window, 4u);
    EXPECT_EQ(f.welcome.instance, some_instance());
}

TEST(CodecUnit, ErrorStatusAckRoundTrip) {
    std::string e;
    wire::encode_error(e, 0, 9, wire::error_code::type_mismatch, "carries string, not i32");
    wire::frame f;
    ASSERT_FALSE(decode_at(e, wire::side::peer, f));
    EXPECT_EQ(f.error.code, wire::error_code::type_mismatch);
    EXPECT_EQ(f.error.text, "carries string, not i32");
    EXPECT_EQ(f.h.id, 9u);

    std::string s;
    wire::encode_status(s, 2, 11, wire::status_body{3, 10, true});
    ASSERT_FALSE(decode_at(s, wire::side::peer, f));
    EXPECT_EQ(f.status.length, 3u);
    EXPECT_EQ(f.status.capacity, 10u);
    EXPECT_TRUE(f.status.closed);

    const std::vector<std::uint64_t> seqs{1, 5, 1ULL << 63};
    std::string a;
    wire::encode_ack(a, 2, seqs);
    ASSERT_FALSE(decode_at(a, wire::side::home, f));
    ASSERT_EQ(f.h.id, 3u);
    for (std::size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(f.ack(i), seqs[i]);
}

TEST(CodecUnit, SendAndValueCarryTheirPayload) {
    std::string s;
    wire::begin_send(s, 4, 12, wire::flag::try_now);
    zchan::encode_value(std::string("hello"), s);
    wire::frame f;
    ASSERT_FALSE(decode_at(s, wire::side::home, f));
    EXPECT_EQ(f.h.id, 12u);
    EXPECT_EQ(f.h.flags, wire::flag::try_now);
    std::optional<std::string> v;
    ASSERT_FALSE(zchan::decode_value(f.payload.data(), f.payload.size(), v));
    EXPECT_EQ(*v, "hello");

    std::string val;
    wire::begin_value(val, 4, 13, 99);
    zchan::encode_value(std::int32_t{-7}, val);
    ASSERT_FALSE(decode_at(val, wire::side::peer, f));
    EXPECT_EQ(f.h.id, 13u);
    EXPECT_EQ(f.delivery_seq, 99u);
    std::optional<std::int32_t> i;
    ASSERT_FALSE(zchan::decode_value(f.payload.data(), f.payload.size(), i));
    EXPECT_EQ(*i, -7);
}

TEST(CodecUnit, EveryBodylessTypeRoundTripsOnItsSide) {
    using enum wire::msg;
    for (auto m : {cancel_send, recv, cancel_recv, ret, close, query, watch_send, cancel_watch}) {
        wire::frame f;
        EXPECT_FALSE(decode_at(simple(m), wire::side::home, f)) << wire::to_string(m);
        EXPECT_EQ(f.h.type, m);
    }
    for (auto m : {send_ok, send_closed, send_full, send_cancelled, recv_cancelled, closed, empty,
                   close_ok, ready, watch_cancelled}) {
        wire::frame f;
        EXPECT_FALSE(decode_at(simple(m), wire::side::peer, f)) << wire::to_string(m);
    }
    for (auto side : {wire::side::home, wire::side::peer}) {
        wire::frame f;
        EXPECT_FALSE(decode_at(simple(ping, 0, 0), side, f));
        EXPECT_FALSE(decode_at(simple(pong, 0, 5), side, f));
    }
    wire::frame f;
    EXPECT_FALSE(decode_at(simple(bye, 3, 0), wire::side::home, f));
    EXPECT_FALSE(decode_at(simple(revoked, 3, 0), wire::side::home, f));
    EXPECT_FALSE(decode_at(simple(revoke, 3, 0), wire::side::peer, f));
    EXPECT_TRUE(decode_at(simple(revoke, 3, 1), wire::side::peer, f)) << "REVOKE's id is 0";
}

std::string as_string(wire::bytes b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// protocol.md §8.6.1: a select's RECV and WATCH_SEND on an unbuffered
// channel carry its tag after the header, flagged SELECT.
TEST(CodecUnit, SelectTaggedRecvAndWatchSendRoundTripTheirTag) {
    for (auto m : {wire::msg::recv, wire::msg::watch_send}) {
        std::string out;
        wire::encode_wait_request(out, m, 3, 42, 0, 0x1122334455667788ULL);
        ASSERT_EQ(out.size(), wire::select_request_size) << wire::to_string(m);
        wire::frame f;
        ASSERT_FALSE(decode_at(out, wire::side::home, f)) << wire::to_string(m);
        EXPECT_EQ(f.h.type, m);
        EXPECT_EQ(f.h.flags, wire::flag::select);
        EXPECT_EQ(f.h.id, 42U);
        EXPECT_EQ(f.select_tag, 0x1122334455667788ULL);

        std::string plain;  // tag 0: no SELECT, no body
        wire::encode_wait_request(plain, m, 3, 42, 0, 0);
        EXPECT_EQ(plain, simple(m));
        ASSERT_FALSE(decode_at(plain, wire::side::home, f));
        EXPECT_EQ(f.select_tag, 0U);
    }
}

TEST(CodecUnit, MalformedSelectTagsAreRejected) {
    wire::frame f;
    for (auto m : {wire::msg::recv, wire::msg::watch_send}) {
        auto no_tag = simple(m, 3, 1, wire::flag::select);
        EXPECT_EQ(decode_at(no_tag, wire::side::home, f), codec_errc::truncated)
            << wire::to_string(m);
        auto zero_tag = no_tag;
        put_u64(zero_tag, 0);
        EXPECT_EQ(decode_at(zero_tag, wire::side::home, f), codec_errc::zero_id);
        auto long_tag = no_tag;
        put_u64(long_tag, 5);
        long_tag += "x";
        EXPECT_EQ(decode_at(long_tag, wire::side::home, f), codec_errc::bad_length);
        auto body_without_flag = simple(m);
        put_u64(body_without_flag, 5);
        EXPECT_EQ(decode_at(body_without_flag, wire::side::home, f), codec_errc::bad_length);
    }
    // A select's RECV waits; a TRY never does.
    auto try_tag = simple(wire::msg::recv, 3, 1, wire::flag::select | wire::flag::try_now);
    put_u64(try_tag, 5);
    EXPECT_EQ(decode_at(try_tag, wire::side::home, f), codec_errc::bad_flags);
    // Only RECV and WATCH_SEND carry it.
    auto cancel = simple(wire::msg::cancel_recv, 3, 1, wire::flag::select);
    put_u64(cancel, 5);
    EXPECT_EQ(decode_at(cancel, wire::side::home, f), codec_errc::bad_flags);
}

TEST(CodecUnit, CreditAndSendManyRoundTrip) {  // protocol.md §9.1
    std::string c;
    wire::encode_credit(c, 3, 0, 0);  // nothing granted yet, nothing confirmed: valid
    wire::frame f;
    ASSERT_FALSE(decode_at(c, wire::side::peer, f));
    EXPECT_EQ(c.size(), wire::credit_size);
    c.clear();
    wire::encode_credit(c, 3, 1024, 77);
    ASSERT_FALSE(decode_at(c, wire::side::peer, f));
    EXPECT_EQ(f.h.type, wire::msg::credit);
    EXPECT_EQ(f.h.id, 1024U);
    EXPECT_EQ(f.confirmed, 77U);
    EXPECT_TRUE(decode_at(c, wire::side::home, f)) << "CREDIT goes home -> peer only";
    EXPECT_TRUE(decode_at(c.substr(0, 16), wire::side::peer, f)) << "CREDIT without its body";

    std::string m;
    wire::begin_send_many(m, 3, 41);
    for (const std::string p : {"a", "", "xyz"}) {
        const std::size_t at = zchan::detail::reply_sink::values_entry_begin(m);
        m += p;
        zchan::detail::reply_sink::values_entry_end(m, at);
    }
    wire::finish_send_many(m, 0, 3);
    ASSERT_FALSE(decode_at(m, wire::side::home, f));
    EXPECT_EQ(f.h.type, wire::msg::send_many);
    EXPECT_EQ(f.h.id, 41U);
    ASSERT_EQ(f.count, 3U);
    wire::values_reader r(f);
    EXPECT_EQ(as_string(r.next()), "a");
    EXPECT_EQ(as_string(r.next()), "");
    EXPECT_EQ(as_string(r.next()), "xyz");
    EXPECT_TRUE(decode_at(m, wire::side::peer, f)) << "SEND_MANY goes peer -> home only";
    EXPECT_TRUE(decode_at(m.substr(0, m.size() - 1), wire::side::home, f)) << "an entry cut short";
    std::string zero = m;
    wire::finish_send_many(zero, 0, 0);
    EXPECT_TRUE(decode_at(zero, wire::side::home, f)) << "a SEND_MANY of no values";
}

/// A VALUES frame (protocol.md §8.8) carrying `payloads`, built the way the home builds it.
std::string values_frame(std::uint64_t first_request, std::uint64_t first_delivery,
                         const std::vector<std::string>& payloads) {
    std::string out;
    wire::begin_values(out, 3, first_request, first_delivery);
    for (const auto& p : payloads) {
        const std::size_t at = zchan::detail::reply_sink::values_entry_begin(out);
        out.append(p);
        zchan::detail::reply_sink::values_entry_end(out, at);
    }
    wire::finish_values(out, 0, static_cast<std::uint32_t>(payloads.size()));
    return out;
}

TEST(CodecUnit, RecvManyAndValuesRoundTrip) {
    std::string rm;
    wire::encode_recv_many(rm, 3, 100, 512);
    wire::frame f;
    ASSERT_FALSE(decode_at(rm, wire::side::home, f));
    EXPECT_EQ(f.h.type, wire::msg::recv_many);
    EXPECT_EQ(f.h.id, 100u);
    EXPECT_EQ(f.count, 512u);
    EXPECT_EQ(rm.size(), wire::recv_many_size);

    const std::vector<std::string> payloads{"a", "", std::string(300, 'x'), "last"};
    const std::string v = values_frame(7, 70, payloads);
    ASSERT_FALSE(decode_at(v, wire::side::peer, f));
    EXPECT_EQ(f.h.type, wire::msg::values);
    EXPECT_EQ(f.h.id, 7u);
    EXPECT_EQ(f.delivery_seq, 70u);
    ASSERT_EQ(f.count, payloads.size());
    wire::values_reader r(f);
    for (const auto& want : payloads) {
        const wire::bytes got = r.next();
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), got.size()), want);
    }
}

TEST(CodecUnit, MalformedRecvManyAndValuesAreRejected) {
    wire::frame f;
    std::string rm;
    wire::encode_recv_many(rm, 3, 100, 0);  // count 0
    EXPECT_EQ(decode_at(rm, wire::side::home, f), codec_errc::bad_batch);
    rm.clear();
    wire::encode_recv_many(rm, 3, 100, 65537);  // over the limit
    EXPECT_EQ(decode_at(rm, wire::side::home, f), codec_errc::bad_batch);
    rm.clear();
    wire::encode_recv_many(rm, 3, ~std::uint64_t{0}, 2);  // ids overflow
    EXPECT_EQ(decode_at(rm, wire::side::home, f), codec_errc::bad_batch);
    rm.clear();
    wire::encode_recv_many(rm, 3, 1, 1);
    EXPECT_EQ(decode_at(rm, wire::side::peer, f), codec_errc::wrong_direction);
    rm.back() = 1;  // reserved
    EXPECT_EQ(decode_at(rm, wire::side::home, f), codec_errc::bad_reserved);

    const std::string good = values_frame(7, 70, {"abc", "de"});
    ASSERT_FALSE(decode_at(good, wire::side::peer, f));
    EXPECT_EQ(decode_at(good, wire::side::home, f), codec_errc::wrong_direction);
    // Every truncation is rejected: no entry may reach past the frame.
    for (std::size_t n = 0; n < good.size(); ++n) {
        EXPECT_TRUE(decode_at(good.substr(0, n), wire::side::peer, f)) << n;
    }
    // Trailing bytes, a count larger than the entries, an entry length
    // claiming gigabytes, count 0, delivery seq 0.
    EXPECT_EQ(decode_at(good + "z", wire::side::peer, f), codec_errc::bad_batch);
    std::string more = good;
    more[24] = 3;
    EXPECT_EQ(decode_at(more, wire::side::peer, f), codec_errc::bad_batch);
    std::string huge = good;
    huge[32 + 3] = static_cast<char>(0x7f);
    EXPECT_EQ(decode_at(huge, wire::side::peer, f), codec_errc::bad_batch);
    std::string zero = good;
    zero[24] = 0;
    EXPECT_EQ(decode_at(zero, wire::side::peer, f), codec_errc::bad_batch);
    std::string nodelivery = values_frame(7, 0, {"a"});
    EXPECT_EQ(decode_at(nodelivery, wire::side::peer, f), codec_errc::zero_id);
}

TEST(CodecUnit, PollRoundTripsItsCases) {  // protocol.md §8.9
    const std::vector<wire::poll_case> cases{
        {3, wire::poll_op::recv}, {4, wire::poll_op::send}, {3, wire::poll_op::send}};
    std::string p;
    wire::encode_poll(p, 3, 9, cases);
    EXPECT_EQ(p.size(), wire::poll_prefix_size + wire::poll_case_size * cases.size());
    wire::frame f;
    ASSERT_FALSE(decode_at(p, wire::side::home, f));
    EXPECT_EQ(f.h.type, wire::msg::poll);
    EXPECT_EQ(f.h.channel, 3u);
    EXPECT_EQ(f.h.id, 9u);
    ASSERT_EQ(f.count, cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(f.poll_channel(i), cases[i].channel) << i;
        EXPECT_EQ(f.poll_case_op(i), cases[i].op) << i;
    }
}

TEST(CodecUnit, MalformedPollsAreRejected) {
    wire::frame f;
    const std::vector<wire::poll_case> one{{5, wire::poll_op::recv}};
    std::string good;
    wire::encode_poll(good, 5, 1, one);
    ASSERT_FALSE(decode_at(good, wire::side::home, f));
    EXPECT_EQ(decode_at(good, wire::side::peer, f), codec_errc::wrong_direction);
    for (std::size_t n = 0; n < good.size(); ++n) {
        EXPECT_TRUE(decode_at(good.substr(0, n), wire::side::home, f)) << n;
    }
    EXPECT_EQ(decode_at(good + std::string(8, '\0'), wire::side::home, f),
              codec_errc::bad_length);  // more cases than counted
    std::string none;
    wire::encode_poll(none, 5, 1, {});
    EXPECT_EQ(decode_at(none, wire::side::home, f), codec_errc::bad_poll);
    std::string many;
    wire::encode_poll(
        many, 5, 1,
        std::vector<wire::poll_case>(wire::max_poll_cases + 1, {5, wire::poll_op::send}));
    EXPECT_EQ(decode_at(many, wire::side::home, f), codec_errc::bad_poll);
    std::string bad = good;
    bad[24] = 0;  // a case's channel 0
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::bad_poll);
    bad = good;
    bad[28] = 3;  // an operation neither receive nor send
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::bad_poll);
    bad = good;
    bad[31] = 1;  // a case's reserved octet
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::bad_reserved);
    bad = good;
    bad[20] = 1;  // the count's reserved word
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::bad_reserved);
    bad = good;
    bad[2] = 1;  // no flags defined
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::bad_flags);
    bad = good;
    bad[8] = 0;  // request id 0
    EXPECT_EQ(decode_at(bad, wire::side::home, f), codec_errc::zero_id);
}

// ---- malformed frames -----------------------------------------------------------

TEST(CodecUnit, EveryTruncationIsRejected) {
    wire::welcome_body wb;
    wb.channel = 1;
    wb.instance = some_instance();
    std::string welcome;
    wire::encode_welcome(welcome, 1, 0, wb);
    std::string status;
    wire::encode_status(status, 1, 1, {});
    std::string ack;
    const std::uint64_t one = 1;
    wire::encode_ack(ack, 1, {&one, 1});
    std::string error;
    wire::encode_error(error, 1, 1, wire::error_code::protocol_error, "xyz");
    const std::string hello = hello_frame();

    struct item {
        std::string bytes;
        wire::side side;
    };
    for (const auto& [bytes, side] :
         {item{hello, wire::side::home}, item{welcome, wire::side::peer},
          item{status, wire::side::peer}, item{ack, wire::side::home},
          item{error, wire::side::peer}, item{simple(wire::msg::recv), wire::side::home}}) {
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            wire::frame f;
            const auto ec = decode_at(bytes.substr(0, n), side, f);
            EXPECT_TRUE(ec) << "prefix " << n << " of " << bytes.size() << " accepted";
            if (n < wire::header_size) {
                EXPECT_EQ(ec, codec_errc::truncated);
            }
        }
    }
    std::string value;
    wire::begin_value(value, 1, 1, 1);
    wire::frame f;
    EXPECT_EQ(decode_at(value.substr(0, 20), wire::side::peer, f), codec_errc::truncated);
}

TEST(CodecUnit, WrongVersionIsRejected) {
    auto s = simple(wire::msg::recv);
    s[0] = 2;
    wire::frame f;
    EXPECT_EQ(decode_at(s, wire::side::home, f), codec_errc::bad_version);
    s[0] = 0;
    EXPECT_EQ(decode_at(s, wire::side::home, f), codec_errc::bad_version);

    // HELLO: header version must equal max-version (§7.1) ...
    auto h = hello_frame();
    h[0] = 2;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_version);
    // ... a future peer speaking 2..3 decodes, and negotiation finds no common version.
    h[0] = 3;
    h[16] = 2;
    h[17] = 3;
    ASSERT_FALSE(decode_at(h, wire::side::home, f));
    EXPECT_EQ(wire::negotiate(f.hello), 0);
    // ... a peer speaking 1..3 negotiates 1.
    h[16] = 1;
    ASSERT_FALSE(decode_at(h, wire::side::home, f));
    EXPECT_EQ(wire::negotiate(f.hello), 1);
    // min > max, or min 0.
    h[16] = 4;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_version_range);
    h[16] = 0;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_version_range);
}

TEST(CodecUnit, UnknownTypesAndWrongDirectionsAreRejected) {
    int unknown = 0;
    for (int t = 0; t < 256; ++t) {
        auto s = simple(wire::msg::recv);
        s[1] = static_cast<char>(t);
        wire::frame fh;
        wire::frame fp;
        const auto eh = decode_at(s, wire::side::home, fh);
        const auto ep = decode_at(s, wire::side::peer, fp);
        if (eh == codec_errc::unknown_type) {
            EXPECT_EQ(ep, codec_errc::unknown_type);
            ++unknown;
        }
    }
    EXPECT_EQ(unknown, 256 - 35);  // §5.2 defines 35 types
    wire::frame f;
    EXPECT_EQ(decode_at(simple(wire::msg::send_ok), wire::side::home, f),
              codec_errc::wrong_direction);
    EXPECT_EQ(decode_at(simple(wire::msg::recv), wire::side::peer, f), codec_errc::wrong_direction);
    EXPECT_EQ(decode_at(hello_frame(), wire::side::peer, f), codec_errc::wrong_direction);
}

TEST(CodecUnit, UndefinedFlagsChannelsAndIdsAreRejected) {
    wire::frame f;
    EXPECT_EQ(decode_at(simple(wire::msg::recv, 3, 1, wire::flag::resume), wire::side::home, f),
              codec_errc::bad_flags);
    EXPECT_EQ(decode_at(simple(wire::msg::close, 3, 1, 0x8000), wire::side::home, f),
              codec_errc::bad_flags);
    EXPECT_EQ(decode_at(simple(wire::msg::send, 3, 1, wire::flag::try_now | wire::flag::credited),
                        wire::side::home, f),
              codec_errc::bad_flags);
    EXPECT_EQ(decode_at(simple(wire::msg::recv, 0, 1), wire::side::home, f),
              codec_errc::bad_channel);
    EXPECT_EQ(decode_at(simple(wire::msg::recv, 3, 0), wire::side::home, f), codec_errc::zero_id);
    EXPECT_EQ(decode_at(simple(wire::msg::bye, 3, 1), wire::side::home, f), codec_errc::zero_id);
    auto h = hello_frame();
    h[4] = 1;  // HELLO must have channel 0
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_channel);
}

TEST(CodecUnit, BadLengthsAreRejected) {
    wire::frame f;
    EXPECT_EQ(decode_at(simple(wire::msg::recv) + "x", wire::side::home, f),
              codec_errc::bad_length);
    EXPECT_EQ(decode_at(hello_frame() + "x", wire::side::home, f), codec_errc::bad_length);

    // ACK: count says 2, one seq present; count 0; count over the limit; zero seq.
    auto ack = simple(wire::msg::ack, 3, 2);
    put_u64(ack, 1);
    EXPECT_EQ(decode_at(ack, wire::side::home, f), codec_errc::bad_length);
    EXPECT_EQ(decode_at(simple(wire::msg::ack, 3, 0), wire::side::home, f), codec_errc::bad_ack);
    EXPECT_EQ(decode_at(simple(wire::msg::ack, 3, 1025), wire::side::home, f), codec_errc::bad_ack);
    auto zero = simple(wire::msg::ack, 3, 1);
    put_u64(zero, 0);
    EXPECT_EQ(decode_at(zero, wire::side::home, f), codec_errc::bad_ack);

    // ERROR: text length disagreeing with the frame, or over the limit, bad code.
    std::string e;
    wire::encode_error(e, 0, 0, wire::error_code::unknown_channel, "abc");
    EXPECT_EQ(decode_at(e + "d", wire::side::peer, f), codec_errc::bad_length);
    std::string big = simple(wire::msg::error, 0, 0);
    big += std::string("\x01\x00\x01\x04", 4);  // code 1, text-len 1025
    big += std::string(1025, 'x');
    EXPECT_EQ(decode_at(big, wire::side::peer, f), codec_errc::bad_text);
    e[16] = 99;
    EXPECT_EQ(decode_at(e, wire::side::peer, f), codec_errc::bad_error_code);

    // STATUS: closed flag 2, reserved byte set.
    std::string s;
    wire::encode_status(s, 1, 1, {});
    s[32] = 2;
    EXPECT_EQ(decode_at(s, wire::side::peer, f), codec_errc::bad_status);
    s[32] = 0;
    s[39] = 1;
    EXPECT_EQ(decode_at(s, wire::side::peer, f), codec_errc::bad_reserved);

    // VALUE with a zero delivery seq.
    std::string v;
    wire::begin_value(v, 1, 1, 0);
    EXPECT_EQ(decode_at(v, wire::side::peer, f), codec_errc::zero_id);
}

TEST(CodecUnit, HelloNameAndTypeLimitsAreEnforced) {
    wire::frame f;
    EXPECT_FALSE(decode_at(hello_frame(std::string(255, 'n')), wire::side::home, f));
    EXPECT_EQ(decode_at(hello_frame(std::string(256, 'n')), wire::side::home, f),
              codec_errc::bad_name);
    EXPECT_EQ(decode_at(hello_frame(""), wire::side::home, f), codec_errc::bad_name);
    EXPECT_FALSE(decode_at(hello_frame("n", std::string(1024, 't')), wire::side::home, f));
    EXPECT_EQ(decode_at(hello_frame("n", std::string(1025, 't')), wire::side::home, f),
              codec_errc::bad_type_name);
    EXPECT_EQ(decode_at(hello_frame("n", ""), wire::side::home, f), codec_errc::bad_type_name);

    // name-len claims more than the frame holds.
    auto h = hello_frame("abc", "i32");
    h[18] = 100;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_length);
    // reserved fields, and an all-zero instance id.
    h = hello_frame();
    h[22] = 1;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_reserved);
    h = hello_frame();
    for (int i = 40; i < 56; ++i) h[static_cast<std::size_t>(i)] = 0;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::zero_instance);
}

TEST(CodecUnit, WelcomeParametersAreChecked) {
    wire::welcome_body b;
    b.channel = 1;
    b.instance = some_instance();
    b.timeout_ms = b.heartbeat_ms;  // timeout must exceed the interval
    std::string out;
    wire::encode_welcome(out, 1, 0, b);
    wire::frame f;
    EXPECT_EQ(decode_at(out, wire::side::peer, f), codec_errc::bad_welcome);
}

// ---- HELLO CREATE (protocol.md §5.2 offset 36, §6.1 rule 4, §17.1) ---------------

std::string create_hello(std::uint32_t capacity, std::uint16_t flags = wire::flag::create) {
    wire::hello_body b;
    b.instance = some_instance();
    b.name = "jobs";
    b.type_name = "string";
    b.create_capacity = capacity;
    std::string out;
    wire::encode_hello(out, 0xc0ffeeULL, flags, b);
    return out;
}

std::uint32_t capacity_field(const std::string& hello) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(hello[36 + i])) << (8 * i);
    }
    return v;
}

TEST(CodecUnit, HelloCreateRoundTripsItsCapacity) {
    // 0 is an unbuffered channel; the codec sets no upper bound (the hub's limit is §17.1's).
    for (const std::uint32_t cap : {0u, 1u, 64u, 0x01020304u, 0xffffffffu}) {
        for (const std::uint16_t flags :
             {wire::flag::create,
              static_cast<std::uint16_t>(wire::flag::create | wire::flag::resume)}) {
            const auto bytes = create_hello(cap, flags);
            ASSERT_EQ(bytes.size(), wire::hello_fixed_size + 4 + 6);
            EXPECT_EQ(capacity_field(bytes), cap) << "little-endian at offset 36";
            wire::frame f;
            ASSERT_FALSE(decode_at(bytes, wire::side::home, f)) << cap << " flags " << flags;
            EXPECT_EQ(f.h.type, wire::msg::hello);
            EXPECT_EQ(f.h.flags, flags);
            EXPECT_EQ(f.h.id, 0xc0ffeeULL);
            EXPECT_EQ(f.hello.create_capacity, cap);
            EXPECT_EQ(f.hello.name, "jobs");
            EXPECT_EQ(f.hello.type_name, "string");
            EXPECT_EQ(f.hello.instance, some_instance());
        }
    }
}

TEST(CodecUnit, HelloWithoutCreateEncodesAndDecodesNoCapacity) {
    // The encoder leaves the field reserved (0) without CREATE, whatever the body holds.
    const auto bytes = create_hello(77, 0);
    EXPECT_EQ(capacity_field(bytes), 0u);
    wire::frame f;
    ASSERT_FALSE(decode_at(bytes, wire::side::home, f));
    EXPECT_EQ(f.h.flags & wire::flag::create, 0);
    EXPECT_EQ(f.hello.create_capacity, 0u);
}

TEST(CodecUnit, HelloCapacityWithoutCreateIsRejected) {
    // §6.1 rule 4: without CREATE, offset 36 is reserved. Each octet counts on its own.
    for (std::size_t at = 36; at < 40; ++at) {
        for (const std::uint16_t flags : {std::uint16_t{0}, wire::flag::resume}) {
            auto h = create_hello(0, flags);
            h[at] = 1;
            wire::frame f;
            EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_reserved)
                << "octet " << at << " flags " << flags;
        }
    }
    // A CREATE HELLO whose flag is cleared in transit: its capacity is now a reserved field.
    auto h = create_hello(5);
    h[2] = 0;
    h[3] = 0;
    wire::frame f;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_reserved);
}

TEST(CodecUnit, HelloCreateDoesNotExcuseTheOtherReservedField) {
    auto h = create_hello(8);
    h[22] = 1;  // reserved u16 after type-len
    wire::frame f;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_reserved);
    h = create_hello(8);
    h[23] = 1;
    EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_reserved);
}

TEST(CodecUnit, HelloFlagsOtherThanResumeAndCreateAreRejected) {
    for (int bit = 0; bit < 16; ++bit) {
        const auto flag = static_cast<std::uint16_t>(1u << bit);
        if (flag == wire::flag::resume || flag == wire::flag::create) continue;
        for (const std::uint16_t with : {std::uint16_t{0}, wire::flag::create}) {
            const auto h = create_hello(with != 0 ? 3 : 0, static_cast<std::uint16_t>(flag | with));
            wire::frame f;
            EXPECT_EQ(decode_at(h, wire::side::home, f), codec_errc::bad_flags)
                << "bit " << bit << " with " << with;
        }
    }
}

TEST(CodecUnit, CreateFlagOnAnyTypeButHelloIsRejected) {
    wire::frame f;
    for (const auto m :
         {wire::msg::recv, wire::msg::send, wire::msg::close, wire::msg::query, wire::msg::ret}) {
        EXPECT_EQ(decode_at(simple(m, 3, 1, wire::flag::create), wire::side::home, f),
                  codec_errc::bad_flags)
            << wire::to_string(m);
    }
    EXPECT_EQ(decode_at(simple(wire::msg::ping, 0, 1, wire::flag::create), wire::side::home, f),
              codec_errc::bad_flags);
    // WELCOME may carry RESUME (§12.2) but not CREATE: a created channel is welcomed plainly.
    wire::welcome_body b;
    b.channel = 1;
    b.instance = some_instance();
    std::string ok;
    wire::encode_welcome(ok, 1, wire::flag::resume, b);
    EXPECT_FALSE(decode_at(ok, wire::side::peer, f));
    std::string bad;
    wire::encode_welcome(bad, 1, wire::flag::create, b);
    EXPECT_EQ(decode_at(bad, wire::side::peer, f), codec_errc::bad_flags);
}

TEST(CodecUnit, FramesOverTheMaximumAreRejected) {
    std::string s;
    wire::begin_send(s, 1, 1, 0);
    s.append(1000, 'x');
    wire::frame f;
    EXPECT_EQ(decode_at(s, wire::side::home, f, 1000), codec_errc::too_large);
    EXPECT_FALSE(decode_at(s, wire::side::home, f, 1016));
    EXPECT_EQ(wire::to_errc(codec_errc::too_large), zchan::errc::message_too_large);
    EXPECT_EQ(wire::to_errc(codec_errc::bad_flags), zchan::errc::protocol_error);
}

TEST(CodecUnit, DecodingAFrameAllocatesNothing) {
    const auto hello = hello_frame(std::string(255, 'n'), std::string(1024, 't'));
    wire::frame f;
    std::error_code ec;
    const auto bytes = allocated_by([&] { ec = decode_at(hello, wire::side::home, f); });
    EXPECT_FALSE(ec);
    EXPECT_EQ(bytes, 0u);
}

TEST(CodecUnit, RandomBytesNeverCrashTheFrameDecoder) {
    std::mt19937_64 rng(12345);
    std::string buf;
    int accepted = 0;
    for (int i = 0; i < 200000; ++i) {
        buf.assign(16 + rng() % 48, '\0');
        for (auto& c : buf) c = static_cast<char>(rng());
        if (i % 2 == 0) {
            buf[0] = 1;  // mostly valid headers, to get past the first checks
            buf[1] = static_cast<char>(
                std::array<int, 6>{0x01, 0x10, 0x20, 0x22, 0x26, 0x33}[rng() % 6]);
        }
        wire::frame f;
        if (!decode_at(buf, i % 3 == 0 ? wire::side::peer : wire::side::home, f)) ++accepted;
    }
    SUCCEED() << accepted << " random frames were valid";
}

// ---- values (protocol.md §13) ----------------------------------------------------

struct job {
    int id = 0;
    std::string name;
    std::vector<double> weights;
    std::optional<std::string> note;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(id, name, weights, note);
    }
    bool operator==(const job&) const = default;
};

struct node {
    std::vector<node> kids;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(kids);
    }
};

template <class T>
T round_trip(const T& v) {
    std::string buf;
    zchan::encode_value(v, buf);
    std::optional<T> out;
    const auto ec = zchan::decode_value(buf.data(), buf.size(), out);
    EXPECT_FALSE(ec) << ec.message();
    return std::move(*out);
}

TEST(CodecUnit, ValuesRoundTrip) {
    EXPECT_EQ(round_trip(std::string("héllo")), "héllo");
    EXPECT_EQ(round_trip(std::vector<std::string>{"a", "", "ccc"}),
              (std::vector<std::string>{"a", "", "ccc"}));
    EXPECT_EQ(round_trip(std::map<std::string, std::vector<int>>{{"x", {1, 2}}, {"y", {}}}),
              (std::map<std::string, std::vector<int>>{{"x", {1, 2}}, {"y", {}}}));
    EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}),
              (std::vector<bool>{true, false, true}));
    EXPECT_EQ(round_trip(std::deque<int>{1, 2, 3}), (std::deque<int>{1, 2, 3}));
    EXPECT_EQ(round_trip(std::list<std::string>{"p", "q"}), (std::list<std::string>{"p", "q"}));
    EXPECT_EQ(round_trip(std::unordered_set<int>{4, 5}), (std::unordered_set<int>{4, 5}));
    const job j{7, "seven", {0.5, 1.5}, std::string("n")};
    EXPECT_EQ(round_trip(j), j);
    EXPECT_EQ(*round_trip(std::make_unique<int>(41)), 41);
    EXPECT_EQ(round_trip(std::pair<int, std::string>{1, "one"}),
              (std::pair<int, std::string>{1, "one"}));
}

TEST(CodecUnit, ValueEncodingIsCerealBinaryLayout) {
    // protocol.md §13: a string is a u64 LE size tag then its bytes.
    std::string buf;
    zchan::encode_value(std::string("ab"), buf);
    EXPECT_EQ(buf, std::string("\x02\0\0\0\0\0\0\0ab", 10));
}

template <class T>
void expect_rejected_cheaply(const std::string& bytes, const char* what) {
    std::optional<T> out;
    std::error_code ec;
    const auto total =
        allocated_by([&] { ec = zchan::decode_value(bytes.data(), bytes.size(), out); });
    EXPECT_EQ(ec, zchan::errc::decode_error) << what;
    EXPECT_FALSE(out.has_value()) << what;
    // The bound: no single request, and not all requests together, beyond a
    // small multiple of the payload (plus exception bookkeeping).
    EXPECT_LT(probe_largest.load(), 64 * bytes.size() + 4096) << what;
    EXPECT_LT(total, 64 * bytes.size() + 16384) << what;
}

std::string tag(std::uint64_t n) {
    std::string s;
    put_u64(s, n);
    return s;
}

TEST(CodecUnit, HostileSizeTagsAreRejectedWithoutBigAllocations) {
    // The case: 24 bytes claiming 2^28 strings (8 GB with cereal's stock archive).
    expect_rejected_cheaply<std::vector<std::string>>(tag(1ULL << 28) + tag(1) + tag(1 << 20),
                                                      "vector<string> 2^28");
    expect_rejected_cheaply<std::string>(tag(1ULL << 40) + "abcdefgh", "string 2^40");
    expect_rejected_cheaply<std::string>(tag(~0ULL), "string 2^64-1");
    // vector<int>: 40 ints claimed, 100 bytes present (n <= bytes, n*4 > bytes).
    expect_rejected_cheaply<std::vector<int>>(tag(40) + std::string(100, 'x'), "vector<int>");
    expect_rejected_cheaply<std::vector<double>>(tag(1ULL << 61) + tag(0),
                                                 "vector<double> overflow");
    // Nested: each level claims all the bytes left.
    std::string nested = tag(1000) + tag(990) + tag(980) + std::string(1000, '\0');
    expect_rejected_cheaply<std::vector<std::vector<std::string>>>(nested, "nested vectors");
    expect_rejected_cheaply<std::vector<std::vector<std::vector<int>>>>(
        tag(1ULL << 30) + tag(1ULL << 30) + tag(1ULL << 30), "triple nesting");
    expect_rejected_cheaply<std::map<std::string, std::vector<int>>>(
        tag(1ULL << 30) + tag(3) + "abc" + tag(1ULL << 30), "map");
    expect_rejected_cheaply<std::unordered_set<int>>(tag(1ULL << 30) + tag(0), "unordered_set");
    expect_rejected_cheaply<std::deque<std::string>>(tag(1ULL << 30) + tag(0), "deque");
    expect_rejected_cheaply<std::list<std::string>>(tag(1ULL << 30) + tag(0), "list");
    expect_rejected_cheaply<std::vector<bool>>(tag(1ULL << 30) + "\x01", "vector<bool>");
    expect_rejected_cheaply<job>(std::string("\x01\0\0\0", 4) + tag(1ULL << 50), "job");
}

TEST(CodecUnit, DeepNestingIsRejected) {
    // node{kids=[node{kids=[...]}]} 5000 deep: each level is a size tag of 1.
    std::string deep;
    for (int i = 0; i < 5000; ++i) deep += tag(1);
    deep += tag(0);
    expect_rejected_cheaply<node>(deep, "deep recursion");
    // A modest depth is fine.
    std::string shallow;
    for (int i = 0; i < 50; ++i) shallow += tag(1);
    shallow += tag(0);
    std::optional<node> out;
    EXPECT_FALSE(zchan::decode_value(shallow.data(), shallow.size(), out));
}

TEST(CodecUnit, TruncatedTrailingAndInvalidValuesAreRejected) {
    std::string buf;
    zchan::encode_value(job{1, "x", {1.0}, std::string("y")}, buf);
    for (std::size_t n = 0; n < buf.size(); ++n) {
        std::optional<job> out;
        EXPECT_EQ(zchan::decode_value(buf.data(), n, out), zchan::errc::decode_error) << n;
    }
    std::string extra = buf + "z";
    std::optional<job> out;
    EXPECT_EQ(zchan::decode_value(extra.data(), extra.size(), out), zchan::errc::decode_error);
    const std::string bad_bool = "\x02";
    std::optional<bool> b;
    EXPECT_EQ(zchan::decode_value(bad_bool.data(), bad_bool.size(), b), zchan::errc::decode_error);
}

// Zero-size values: Go's [0]byte and struct{} channels work, so every such
// type the concept accepts must encode (to nothing) and decode.
struct tick {  // no serialize function: cereal's empty-class elision
    bool operator==(const tick&) const = default;
};

struct empty_with_serialize {
    template <class Archive>
    void serialize(Archive& /*ar*/) {}
    bool operator==(const empty_with_serialize&) const = default;
};

template <class T>
void expect_zero_octets(const T& v, const char* what) {
    std::string buf;
    zchan::encode_value(v, buf);
    EXPECT_EQ(buf.size(), 0u) << what;
    std::optional<T> out;
    EXPECT_FALSE(zchan::decode_value(buf.data(), buf.size(), out)) << what;
    EXPECT_TRUE(out.has_value()) << what;
    // A null, empty span is a whole zero-size value too.
    out.reset();
    EXPECT_FALSE(zchan::decode_value(nullptr, 0, out)) << what;
    EXPECT_TRUE(out.has_value()) << what;
    // Nothing may follow it.
    out.reset();
    EXPECT_EQ(zchan::decode_value("x", 1, out), zchan::errc::decode_error) << what;
}

TEST(CodecUnit, ZeroSizeValuesEncodeAsNoOctetsAndRoundTrip) {
    // cereal hands std::array<arithmetic, 0> over as binary_data(nullptr, 1).
    expect_zero_octets(std::array<int, 0>{}, "array<int,0>");
    expect_zero_octets(std::array<char, 0>{}, "array<char,0>");
    expect_zero_octets(std::array<double, 0>{}, "array<double,0>");
    expect_zero_octets(std::array<bool, 0>{}, "array<bool,0>");
    expect_zero_octets(std::array<std::string, 0>{}, "array<string,0>");
    expect_zero_octets(std::array<std::array<int, 0>, 3>{}, "array<array<int,0>,3>");
    expect_zero_octets(tick{}, "empty struct");
    expect_zero_octets(empty_with_serialize{}, "empty struct with serialize");
    expect_zero_octets(std::tuple<>{}, "tuple<>");
    expect_zero_octets(std::tuple<std::array<int, 0>, tick>{}, "tuple of zero-size values");
}

TEST(CodecUnit, ZeroSizeValuesInsideOtherValuesRoundTrip) {
    using arr0 = std::array<int, 0>;
    EXPECT_EQ(round_trip(std::pair<arr0, int>{{}, 5}).second, 5);
    EXPECT_EQ(round_trip(std::pair<std::string, tick>{"a", {}}).first, "a");
    EXPECT_TRUE(round_trip(std::optional<arr0>(arr0{})).has_value());
    EXPECT_FALSE(round_trip(std::optional<arr0>()).has_value());
    EXPECT_EQ(round_trip(std::vector<arr0>{}).size(), 0u);
    EXPECT_EQ(round_trip(std::map<int, arr0>{{1, {}}, {2, {}}}).size(), 2u);
    EXPECT_EQ(round_trip(std::vector<std::tuple<arr0, char>>(3, {arr0{}, 'c'})).size(), 3u);
    std::string buf;
    zchan::encode_value(std::pair<arr0, int>{{}, 5}, buf);
    EXPECT_EQ(buf.size(), sizeof(int));  // the int alone
}

// A user type that hands the archive bytes without storage.
struct null_blob {
    template <class Archive>
    void serialize(Archive& ar) {
        ar(cereal::binary_data(static_cast<int*>(nullptr), sizeof(int)));
    }
};

TEST(CodecUnit, BinaryDataWithoutStorageIsAnErrorNotACrash) {
    std::string buf;
    EXPECT_THROW(zchan::encode_value(null_blob{}, buf), cereal::Exception);
    const std::string four(4, '\0');
    std::optional<null_blob> out;
    EXPECT_EQ(zchan::decode_value(four.data(), four.size(), out), zchan::errc::decode_error);
}

TEST(CodecUnit, EmptyStringsAndContainersRoundTrip) {
    // Their data() may be null, with length 0.
    EXPECT_EQ(round_trip(std::string()), "");
    EXPECT_EQ(round_trip(std::u16string()), u"");
    EXPECT_EQ(round_trip(std::vector<int>()), std::vector<int>());
    EXPECT_EQ(round_trip(std::vector<char>()), std::vector<char>());
    EXPECT_EQ(round_trip(std::vector<bool>()), std::vector<bool>());
    EXPECT_EQ(round_trip(std::vector<std::string>()), std::vector<std::string>());
    EXPECT_EQ(round_trip(std::vector<std::string>{"", ""}), (std::vector<std::string>{"", ""}));
    EXPECT_EQ(round_trip(std::deque<int>()), std::deque<int>());
    EXPECT_EQ(round_trip(std::list<std::string>()), std::list<std::string>());
    EXPECT_EQ(round_trip(std::map<std::string, std::string>()),
              (std::map<std::string, std::string>()));
    EXPECT_EQ(round_trip(std::unordered_set<int>()), std::unordered_set<int>());
    EXPECT_EQ(round_trip(std::optional<std::string>("")), std::optional<std::string>(""));
    std::string buf;
    zchan::encode_value(std::vector<int>(), buf);
    EXPECT_EQ(buf, tag(0));
}

TEST(CodecUnit, RandomBytesNeverCrashTheValueDecoder) {
    std::mt19937_64 rng(99);
    std::string buf;
    for (int i = 0; i < 20000; ++i) {
        buf.assign(rng() % 64, '\0');
        for (auto& c : buf) c = static_cast<char>(rng() % 4 == 0 ? rng() : rng() % 3);
        std::optional<std::map<std::string, std::vector<std::string>>> a;
        std::optional<job> b;
        std::optional<std::vector<std::vector<int>>> c;
        allocated_by([&] {
            (void)zchan::decode_value(buf.data(), buf.size(), a);
            (void)zchan::decode_value(buf.data(), buf.size(), b);
            (void)zchan::decode_value(buf.data(), buf.size(), c);
        });
        ASSERT_LT(probe_largest.load(), 64 * 64 + 4096) << "iteration " << i;
    }
}

}  // namespace
