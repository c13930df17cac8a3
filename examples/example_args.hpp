#pragma once
// Command-line helpers shared by the examples: a flag's value is parsed whole (no trailing
// characters), and anything else is a persist::ConfigError that names the flag, the expected
// range and what was given, e.g. "--steps: expected an integer >= 1, got '10x'".
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include <persist/core/error.hpp>

namespace persist_examples {

/// `text` as an integer >= min.
inline std::int64_t parse_int(const std::string& flag, const std::string& text, std::int64_t min) {
    std::size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || v < min)
        throw persist::ConfigError(flag + ": expected an integer >= " + std::to_string(min) + ", got '" + text + "'");
    return v;
}

/// `text` as a number in [lo, hi], or in [lo, hi) when `hi_open`.
inline double parse_number(const std::string& flag, const std::string& text, double lo, double hi, bool hi_open = false) {
    std::size_t used = 0;
    double v = std::nan("");
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    const bool in_range = v >= lo && (hi_open ? v < hi : v <= hi);
    if (used == 0 || used != text.size() || !in_range) {
        char range[96];
        std::snprintf(range, sizeof range, "[%g, %g%c", lo, hi, hi_open ? ')' : ']');
        throw persist::ConfigError(flag + ": expected a number in " + range + ", got '" + text + "'");
    }
    return v;
}

}  // namespace persist_examples
