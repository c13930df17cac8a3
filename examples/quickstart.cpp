// quickstart: PERSIST's core in one page.
//
//  1. persist::Rng is counter-based (Philox4x32-10): draw n of stream `id` under `seed` is a pure
//     function of (seed, id, n). Independent streams can be evaluated in any order, on any
//     number of threads, and give bitwise the same result. This is how batched rollouts stay
//     reproducible. Here: a Monte Carlo estimate of pi from 8 streams.
//  2. A stream's position can be saved and restored exactly (what checkpoints do).
//  3. Bad input throws a persist::Error subtype whose message names the value and what was
//     expected; nothing is clamped silently.
//
// Usage: quickstart [samples-per-stream]   (default 100000; exit code 0 = all checks passed)
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <numbers>
#include <string>
#include <vector>

#include <persist/core/error.hpp>
#include <persist/core/random.hpp>

namespace {

/// A positive sample count, or a ConfigError naming the argument and what was expected.
std::uint64_t parse_count(const std::string& text) {
    std::size_t used = 0;
    long long value = 0;
    try {
        value = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || value <= 0)
        throw persist::ConfigError("argument 1 (samples per stream): expected a positive "
                                   "integer, got '" + text + "'");
    return static_cast<std::uint64_t>(value);
}

/// Points of stream `stream` that fall inside the unit quarter circle, out of n.
std::uint64_t quarter_circle_hits(std::uint64_t seed, std::uint64_t stream, std::uint64_t n) {
    persist::Rng rng(seed, stream);
    std::uint64_t hits = 0;
    for (std::uint64_t i = 0; i < n; ++i) {
        const double x = rng.uniform<double>();
        const double y = rng.uniform<double>();
        hits += (x * x + y * y < 1.0) ? 1u : 0u;
    }
    return hits;
}

bool check(bool ok, const char* what) {
    std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::uint64_t n = argc > 1 ? parse_count(argv[1]) : 100000;
        constexpr std::uint64_t seed = 2024;
        constexpr int streams = 8;
        bool ok = true;

        // 1. Streams evaluated forwards and backwards: identical counts, stream by stream.
        std::vector<std::uint64_t> forward(streams), backward(streams);
        for (int s = 0; s < streams; ++s) forward[s] = quarter_circle_hits(seed, s, n);
        for (int s = streams - 1; s >= 0; --s) backward[s] = quarter_circle_hits(seed, s, n);
        std::uint64_t hits = 0;
        for (const auto h : forward) hits += h;
        const double total = static_cast<double>(n) * streams;
        const double pi = 4.0 * static_cast<double>(hits) / total;
        // 6 standard errors of the estimator 4 * Binomial(N, pi/4) / N.
        const double p = std::numbers::pi / 4.0;
        const double tolerance = 6.0 * 4.0 * std::sqrt(p * (1.0 - p) / total);
        std::printf("pi ~ %.6f from %d streams x %llu samples (|error| %.2e, tolerance %.2e)\n",
                    pi, streams, static_cast<unsigned long long>(n),
                    std::abs(pi - std::numbers::pi), tolerance);
        ok &= check(forward == backward, "streams give the same draws in any evaluation order");
        ok &= check(std::abs(pi - std::numbers::pi) < tolerance, "estimate within 6 sigma");

        // 2. Save a stream's position, restore it into a fresh generator, continue identically.
        persist::Rng a(seed, 3);
        for (int i = 0; i < 1001; ++i) a();
        const std::uint64_t saved = a.position();
        persist::Rng b(seed, 3);
        b.set_position(saved);
        bool same = true;
        for (int i = 0; i < 100; ++i) same &= (a() == b());
        ok &= check(same, "a restored position continues the same sequence");

        // 3. Bad input is an error that says what was expected, not a silent default.
        try {
            parse_count("-3");
            ok &= check(false, "parse_count(\"-3\") throws");
        } catch (const persist::ConfigError& e) {
            std::printf("  caught persist::ConfigError: %s\n", e.what());
            ok &= check(true, "parse_count(\"-3\") throws persist::ConfigError");
        }

        std::printf("quickstart: %s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
        return ok ? 0 : 1;
    } catch (const persist::Error& e) {  // every PERSIST error derives from persist::Error
        std::fprintf(stderr, "quickstart: %s\n", e.what());
        return 2;
    }
}
