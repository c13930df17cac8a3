#pragma once
/// @file demonstrations.hpp
/// Safe demonstrations (seed "Change 4: Learn Viability from Safe Demonstrations"): a buffer of
/// expert steps (episode id, internal state x, action a, optionally observation o), loaded from
/// JSON lines or CSV, from which the viability approximator is pre-trained (safe states are
/// positives) before the agent ever risks a failure.
///
/// File formats (docs/models.md, "Demonstration files"), chosen by extension:
/// - `.jsonl`: one JSON object per non-empty line, one step each:
///     {"episode": 0, "x": [0.7, 0.5, 0.9], "a": [0.1, -0.3], "o": [...]}
///   "episode" (integer >= 0) and "x" are required, "a" when action_dim > 0, "o" when
///   observation_dim > 0; a field whose dimension argument is 0 is not read. Other keys are
///   errors (they catch typos such as "obs").
/// - `.csv`: a header row naming the columns, then one row per step. Columns `x0..x{X-1}`,
///   `a0..a{A-1}`, `o0..o{O-1}` in any order, and optionally `episode` (all rows are episode 0
///   without it). Plain numbers only (no quoting). Columns o* are not read when
///   observation_dim = 0 (likewise a* when action_dim = 0).
/// Empty lines are skipped; a trailing '\r' is ignored. Every error throws a persist::Error
/// subtype whose message starts with "<file>:<line>:": IoError for a missing/unreadable file,
/// a malformed line, an unknown key or column, a non-number or a non-finite value;
/// ShapeError for a vector of the wrong length or a missing/extra indexed column.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/types.hpp"

namespace persist::replay {

/// Demonstration steps in memory, one column per step (structure of arrays). Append-only.
template <class T>
class DemonstrationBuffer {
    static_assert(Real<T>, "persist::replay::DemonstrationBuffer<T>: T must be float or double");

public:
    using scalar_type = T;

    /// internal_dim >= 1, action_dim >= 0, observation_dim >= 0 (0: not stored); ConfigError otherwise.
    DemonstrationBuffer(Index internal_dim, Index action_dim, Index observation_dim = 0)
        : X_(internal_dim), A_(action_dim), O_(observation_dim) {
        if (internal_dim < 1)
            throw ConfigError("DemonstrationBuffer: internal_dim must be >= 1, got " + std::to_string(internal_dim));
        if (action_dim < 0)
            throw ConfigError("DemonstrationBuffer: action_dim must be >= 0, got " + std::to_string(action_dim));
        if (observation_dim < 0)
            throw ConfigError("DemonstrationBuffer: observation_dim must be >= 0, got " +
                              std::to_string(observation_dim));
    }

    Index internal_dim() const { return X_; }
    Index action_dim() const { return A_; }
    Index observation_dim() const { return O_; }
    Index size() const { return static_cast<Index>(episode_.size()); }
    bool empty() const { return episode_.empty(); }
    /// Distinct episode ids.
    Index num_episodes() const {
        std::vector<std::int64_t> e(episode_);
        std::sort(e.begin(), e.end());
        return static_cast<Index>(std::unique(e.begin(), e.end()) - e.begin());
    }

    void reserve(Index n) {
        const auto k = static_cast<std::size_t>(n);
        episode_.reserve(k);
        x_.reserve(k * static_cast<std::size_t>(X_));
        a_.reserve(k * static_cast<std::size_t>(A_));
        o_.reserve(k * static_cast<std::size_t>(O_));
    }

    /// Append one step. Sizes must match (ShapeError), values be finite and episode >= 0 (Error).
    void add(std::int64_t episode, VecCRef<T> x, VecCRef<T> a, VecCRef<T> o = Vec<T>()) {
        if (x.size() != X_) persist::detail::throw_shape("DemonstrationBuffer::add: x", X_, 1, x.size(), 1);
        if (a.size() != A_) persist::detail::throw_shape("DemonstrationBuffer::add: a", A_, 1, a.size(), 1);
        if (o.size() != O_) persist::detail::throw_shape("DemonstrationBuffer::add: o", O_, 1, o.size(), 1);
        if (episode < 0) throw Error("DemonstrationBuffer::add: episode must be >= 0, got " + std::to_string(episode));
        if (!x.allFinite() || !a.allFinite() || !o.allFinite())
            throw Error("DemonstrationBuffer::add: non-finite value in step " + std::to_string(size()));
        episode_.push_back(episode);
        x_.insert(x_.end(), x.data(), x.data() + X_);
        a_.insert(a_.end(), a.data(), a.data() + A_);
        o_.insert(o_.end(), o.data(), o.data() + O_);
    }

    /// X x N, A x N, O x N views (column = step); invalidated by add().
    Eigen::Map<const Mat<T>> states() const { return {x_.data(), X_, size()}; }
    Eigen::Map<const Mat<T>> actions() const { return {a_.data(), A_, size()}; }
    Eigen::Map<const Mat<T>> observations() const { return {o_.data(), O_, size()}; }
    const std::vector<std::int64_t>& episodes() const { return episode_; }
    std::int64_t episode(Index i) const { return episode_.at(static_cast<std::size_t>(i)); }

    /// n states drawn uniformly with replacement into out (X x n; resized only when its shape
    /// changes). n >= 1 (ConfigError); non-empty buffer (Error).
    void sample_states(Index n, Rng& rng, Mat<T>& out) const {
        if (n < 1) throw ConfigError("DemonstrationBuffer::sample_states: n must be >= 1, got " + std::to_string(n));
        if (empty()) throw Error("DemonstrationBuffer::sample_states: the buffer is empty");
        ensure_shape(out, X_, n);
        const auto N = static_cast<std::uint64_t>(size());
        for (Index j = 0; j < n; ++j) {
            const auto s = static_cast<std::size_t>(rng.below(N));
            std::memcpy(out.col(j).data(), x_.data() + s * static_cast<std::size_t>(X_),
                        static_cast<std::size_t>(X_) * sizeof(T));
        }
    }

private:
    Index X_, A_, O_;
    std::vector<std::int64_t> episode_;
    std::vector<T> x_, a_, o_;
};

namespace detail {

enum class DemoFormat { jsonl, csv };

inline DemoFormat demo_format(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".jsonl") return DemoFormat::jsonl;
    if (ext == ".csv") return DemoFormat::csv;
    throw IoError("demonstrations '" + path.string() + "': unknown extension '" + path.extension().string() +
                  "' (expected .jsonl or .csv)");
}

/// "<file>:<line>: <what>".
inline std::string at(const std::filesystem::path& p, std::size_t line, const std::string& what) {
    return p.string() + ":" + std::to_string(line) + ": " + what;
}

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

/// Shortest decimal that reads back to the same double. An integral result gets ".0" so JSON
/// readers parse it as a float (nlohmann reads "-0" as the integer 0 and would lose the sign).
inline std::string shortest_double(double v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, r.ptr);
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

template <class T>
void json_vector(const std::filesystem::path& p, std::size_t line, const nlohmann::json& obj, const char* key,
                 Index dim, const char* dim_name, std::vector<T>& dst) {
    const auto it = obj.find(key);
    if (it == obj.end()) throw IoError(at(p, line, std::string("missing \"") + key + "\" (" + dim_name + " = " + std::to_string(dim) + ")"));
    if (!it->is_array()) throw IoError(at(p, line, std::string("\"") + key + "\" must be an array of numbers"));
    if (static_cast<Index>(it->size()) != dim)
        throw ShapeError(at(p, line, std::string("\"") + key + "\" has " + std::to_string(it->size()) +
                                         " entries, expected " + dim_name + " = " + std::to_string(dim)));
    for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& v = (*it)[i];
        if (!v.is_number())
            throw IoError(at(p, line, std::string("\"") + key + "\"[" + std::to_string(i) + "] is not a number: " + v.dump()));
        const T t = static_cast<T>(v.get<double>());
        if (!std::isfinite(t))
            throw IoError(at(p, line, std::string("\"") + key + "\"[" + std::to_string(i) + "] is not finite: " + v.dump()));
        dst[i] = t;
    }
}

template <class T>
void load_jsonl(const std::filesystem::path& p, std::istream& in, DemonstrationBuffer<T>& buf) {
    std::string text;
    std::size_t line = 0;
    const Index X = buf.internal_dim(), A = buf.action_dim(), O = buf.observation_dim();
    std::vector<T> x(static_cast<std::size_t>(X)), a(static_cast<std::size_t>(A)), o(static_cast<std::size_t>(O));
    while (std::getline(in, text)) {
        ++line;
        const std::string_view s = trim(text);
        if (s.empty()) continue;
        nlohmann::json obj;
        try {
            obj = nlohmann::json::parse(s.begin(), s.end());
        } catch (const nlohmann::json::exception& e) {
            throw IoError(at(p, line, std::string("malformed JSON: ") + e.what()));
        }
        if (!obj.is_object()) throw IoError(at(p, line, "expected a JSON object {\"episode\": ..., \"x\": [...], ...}"));
        for (auto it = obj.begin(); it != obj.end(); ++it)
            if (it.key() != "episode" && it.key() != "x" && it.key() != "a" && it.key() != "o")
                throw IoError(at(p, line, "unknown key \"" + it.key() + "\" (expected episode, x, a, o)"));
        const auto ep = obj.find("episode");
        if (ep == obj.end()) throw IoError(at(p, line, "missing \"episode\""));
        const bool ep_ok = ep->is_number_unsigned()
                               ? ep->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                               : ep->is_number_integer() && ep->get<std::int64_t>() >= 0;
        if (!ep_ok) throw IoError(at(p, line, "\"episode\" must be an integer in [0, 2^63), got " + ep->dump()));
        json_vector(p, line, obj, "x", X, "internal_dim", x);
        if (A > 0) json_vector(p, line, obj, "a", A, "action_dim", a);
        if (O > 0) json_vector(p, line, obj, "o", O, "observation_dim", o);
        buf.add(ep->get<std::int64_t>(), Eigen::Map<const Vec<T>>(x.data(), X), Eigen::Map<const Vec<T>>(a.data(), A),
                Eigen::Map<const Vec<T>>(o.data(), O));
    }
}

inline std::vector<std::string_view> split_csv(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t c = s.find(',', start);
        out.push_back(trim(s.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start)));
        if (c == std::string_view::npos) break;
        start = c + 1;
    }
    return out;
}

template <class T>
void load_csv(const std::filesystem::path& p, std::istream& in, DemonstrationBuffer<T>& buf) {
    const Index X = buf.internal_dim(), A = buf.action_dim(), O = buf.observation_dim();
    std::string text;
    std::size_t line = 0;
    // Header: column -> (kind, index); kind 'x', 'a', 'o', 'e' (episode), '-' (not read).
    struct Col {
        char kind;
        Index index;
    };
    std::vector<Col> cols;
    auto col_name = [](const Col& c) { return std::string(1, c.kind) + std::to_string(c.index); };
    while (std::getline(in, text)) {
        ++line;
        if (trim(text).empty()) continue;
        const auto names = split_csv(trim(text));
        std::vector<char> seen_x(static_cast<std::size_t>(X)), seen_a(static_cast<std::size_t>(A)),
            seen_o(static_cast<std::size_t>(O));
        bool seen_e = false;
        for (std::size_t c = 0; c < names.size(); ++c) {
            const std::string_view n = names[c];
            const std::string name(n);
            if (n == "episode") {
                if (seen_e) throw IoError(at(p, line, "duplicate column \"episode\""));
                seen_e = true;
                cols.push_back({'e', 0});
                continue;
            }
            Index k = -1;
            if (n.size() >= 2 && (n[0] == 'x' || n[0] == 'a' || n[0] == 'o') && (n.size() == 2 || n[1] != '0')) {
                long long v = 0;
                const auto r = std::from_chars(n.data() + 1, n.data() + n.size(), v);
                if (r.ec == std::errc() && r.ptr == n.data() + n.size()) k = static_cast<Index>(v);
            }
            if (k < 0)
                throw IoError(at(p, line, "unknown column \"" + name + "\" (expected episode, x<i>, a<i>, o<i>)"));
            const char kind = n[0];
            const Index dim = kind == 'x' ? X : kind == 'a' ? A : O;
            const char* dim_name = kind == 'x' ? "internal_dim" : kind == 'a' ? "action_dim" : "observation_dim";
            if (kind != 'x' && dim == 0) {  // not requested: not read
                cols.push_back({'-', 0});
                continue;
            }
            if (k >= dim)
                throw ShapeError(at(p, line, "column \"" + name + "\" is beyond " + dim_name + " = " + std::to_string(dim)));
            auto& seen = kind == 'x' ? seen_x : kind == 'a' ? seen_a : seen_o;
            if (seen[static_cast<std::size_t>(k)]) throw IoError(at(p, line, "duplicate column \"" + name + "\""));
            seen[static_cast<std::size_t>(k)] = 1;
            cols.push_back({kind, k});
        }
        auto require_all = [&](const std::vector<char>& seen, char kind, const char* dim_name) {
            for (std::size_t k = 0; k < seen.size(); ++k)
                if (!seen[k])
                    throw ShapeError(at(p, line, std::string("missing column \"") + kind + std::to_string(k) + "\" (" +
                                                     dim_name + " = " + std::to_string(seen.size()) + ")"));
        };
        require_all(seen_x, 'x', "internal_dim");
        require_all(seen_a, 'a', "action_dim");
        require_all(seen_o, 'o', "observation_dim");
        break;
    }
    if (cols.empty()) return;  // no header: empty file, reported by the caller
    Vec<T> x(X), a(A), o(O);
    while (std::getline(in, text)) {
        ++line;
        if (trim(text).empty()) continue;
        const auto fields = split_csv(trim(text));
        if (fields.size() != cols.size())
            throw IoError(at(p, line, "expected " + std::to_string(cols.size()) + " fields (as the header), got " +
                                          std::to_string(fields.size())));
        std::int64_t episode = 0;
        for (std::size_t c = 0; c < cols.size(); ++c) {
            const std::string_view f = fields[c];
            if (cols[c].kind == '-') continue;
            if (cols[c].kind == 'e') {
                long long v = 0;
                const auto r = std::from_chars(f.data(), f.data() + f.size(), v);
                if (r.ec != std::errc() || r.ptr != f.data() + f.size() || v < 0 || f.empty())
                    throw IoError(at(p, line, "column \"episode\": expected an integer >= 0, got \"" + std::string(f) + "\""));
                episode = static_cast<std::int64_t>(v);
                continue;
            }
            double v = 0;
            const char* b = f.data();
            if (!f.empty() && *b == '+') ++b;  // from_chars rejects a leading '+'
            const auto r = std::from_chars(b, f.data() + f.size(), v);
            const std::string where = "column " + std::to_string(c + 1) + " (" + col_name(cols[c]) + ")";
            if (f.empty() || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) || r.ptr != f.data() + f.size())
                throw IoError(at(p, line, where + ": not a number: \"" + std::string(f) + "\""));
            const T t = static_cast<T>(v);
            if (r.ec == std::errc::result_out_of_range || !std::isfinite(t))
                throw IoError(at(p, line, where + ": not finite (or out of range): \"" + std::string(f) + "\""));
            (cols[c].kind == 'x' ? x : cols[c].kind == 'a' ? a : o)(cols[c].index) = t;
        }
        buf.add(episode, x, a, o);
    }
}

}  // namespace detail

/// Load demonstrations from `path` (.jsonl or .csv, see the file comment). Throws IoError for a
/// missing file, an unknown extension, an empty file or any malformed line, ShapeError for a
/// wrong dimension; messages start with "<file>:<line>:".
template <class T = double>
DemonstrationBuffer<T> load_demonstrations(const std::filesystem::path& path, Index internal_dim, Index action_dim,
                                           Index obs_dim = 0) {
    DemonstrationBuffer<T> buf(internal_dim, action_dim, obs_dim);
    const auto fmt = detail::demo_format(path);
    std::ifstream in(path);
    if (!in) {
        std::error_code ec;
        const bool exists = std::filesystem::exists(path, ec);
        throw IoError("demonstrations '" + path.string() + "': cannot open (" +
                      (exists ? "permission denied or not a regular file" : "no such file") + ")");
    }
    if (fmt == detail::DemoFormat::jsonl) detail::load_jsonl(path, in, buf);
    else detail::load_csv(path, in, buf);
    if (in.bad()) throw IoError("demonstrations '" + path.string() + "': read error");
    if (buf.empty()) throw IoError("demonstrations '" + path.string() + "': no demonstration steps");
    return buf;
}

/// Write `buf` to `path` in the format of its extension (.jsonl or .csv), every value as the
/// shortest decimal that reads back to the same double, so save -> load round-trips exactly
/// (for float too: a float is written as its exact double value). IoError on failure.
template <class T>
void save_demonstrations(const std::filesystem::path& path, const DemonstrationBuffer<T>& buf) {
    const auto fmt = detail::demo_format(path);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError("demonstrations '" + path.string() + "': cannot open for writing");
    const Index X = buf.internal_dim(), A = buf.action_dim(), O = buf.observation_dim();
    const auto xs = buf.states();
    const auto as = buf.actions();
    const auto os = buf.observations();
    auto num = [](T v) { return detail::shortest_double(static_cast<double>(v)); };
    if (fmt == detail::DemoFormat::jsonl) {
        auto vec = [&](const auto& m, Index j, Index d) {
            std::string s = "[";
            for (Index i = 0; i < d; ++i) s += (i ? ", " : "") + num(m(i, j));
            return s + "]";
        };
        for (Index j = 0; j < buf.size(); ++j) {
            out << "{\"episode\": " << buf.episode(j) << ", \"x\": " << vec(xs, j, X);
            if (A > 0) out << ", \"a\": " << vec(as, j, A);
            if (O > 0) out << ", \"o\": " << vec(os, j, O);
            out << "}\n";
        }
    } else {
        out << "episode";
        for (Index i = 0; i < X; ++i) out << ",x" << i;
        for (Index i = 0; i < A; ++i) out << ",a" << i;
        for (Index i = 0; i < O; ++i) out << ",o" << i;
        out << "\n";
        for (Index j = 0; j < buf.size(); ++j) {
            out << buf.episode(j);
            for (Index i = 0; i < X; ++i) out << ',' << num(xs(i, j));
            for (Index i = 0; i < A; ++i) out << ',' << num(as(i, j));
            for (Index i = 0; i < O; ++i) out << ',' << num(os(i, j));
            out << "\n";
        }
    }
    out.flush();
    if (!out) throw IoError("demonstrations '" + path.string() + "': write failed");
}

}  // namespace persist::replay
