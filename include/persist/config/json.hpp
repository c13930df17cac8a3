#pragma once
/// @file json.hpp
/// The reflective loader and writer: one template walks any Boost.Hana-adapted struct
/// (config/reflect.hpp) against a JSON document (nlohmann), and back.
///
///     auto cfg  = persist::config::load_json_file<PersistConfig>("run.json");
///     auto json = persist::config::to_json(cfg);             // nlohmann::ordered_json
///     auto same = persist::config::from_json<PersistConfig>(json);
///
/// Loading is strict: unknown keys, wrong types, integers that do not fit, non-finite numbers,
/// unknown enum names and duplicate keys are persist::ConfigError naming the key path (and,
/// for files, the file and line); then every rule runs (config::validate). A missing key keeps
/// its default. YAML documents go through the same walk (config/yaml.hpp).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "persist/config/reflect.hpp"
#include "persist/core/error.hpp"

namespace persist::config {

/// The document type of the loaders and of to_json: keys keep their order (declaration order
/// when written by to_json, file order when read).
using Json = nlohmann::ordered_json;

namespace detail {

template <class J>
concept JsonValue = nlohmann::detail::is_basic_json<J>::value;

/// How a JSON value is shown after "got": numbers and strings as written, else its kind.
template <class J>
std::string describe(const J& j) {
    switch (j.type()) {
        case nlohmann::json::value_t::null: return "null";
        case nlohmann::json::value_t::boolean: return j.template get<bool>() ? "true" : "false";
        case nlohmann::json::value_t::number_integer: return std::to_string(j.template get<std::int64_t>());
        case nlohmann::json::value_t::number_unsigned: return std::to_string(j.template get<std::uint64_t>());
        case nlohmann::json::value_t::number_float: return format_double(j.template get<double>());
        case nlohmann::json::value_t::string: return quote(j.template get<std::string>());
        case nlohmann::json::value_t::array:
            return j.empty() ? "an empty list" : "a list of " + std::to_string(j.size()) + (j.size() == 1 ? " value" : " values");
        case nlohmann::json::value_t::object: return "a mapping";
        default: return "a binary value";
    }
}

template <class T, class J>
void read(T& out, const J& j, const std::string& path, const Source* src);

template <class T>
std::string unknown_key_message(const std::string& parent, const std::string& key) {
    const auto names = field_names<T>();
    std::string_view best;
    std::size_t best_d = std::numeric_limits<std::size_t>::max();
    for (auto n : names) {
        const std::size_t d = edit_distance(key, n);
        if (d < best_d) best_d = d, best = n;
    }
    std::string msg = "unknown key";
    // Close spelling, or one name a prefix of the other ("confidence" -> "conf").
    for (auto n : names)
        if (best_d > 2 && std::min(n.size(), key.size()) >= 3 &&
            (key.compare(0, n.size(), n) == 0 || n.compare(0, key.size(), key) == 0))
            best = n, best_d = 0;
    if (!best.empty() && (best_d <= 2 || best_d * 3 <= key.size())) msg += " (did you mean " + quote(best) + "?)";
    msg += "; " + display_path(parent) + " accepts: ";
    for (std::size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + std::string(names[i]);
    return msg;
}

template <ConfigInteger T, class J>
void read_integer(T& out, const J& j, const std::string& path, const Source* src) {
    constexpr auto lo = std::numeric_limits<T>::min();
    constexpr auto hi = std::numeric_limits<T>::max();
    auto range_error = [&] {
        if constexpr (std::is_unsigned_v<T>) {
            if (j.is_number_integer() && !j.is_number_unsigned() && j.template get<std::int64_t>() < 0)
                fail(src, path, "expected a non-negative integer, got " + describe(j));
            if (j.is_number_float() && j.template get<double>() < 0)
                fail(src, path, "expected a non-negative integer, got " + describe(j));
        }
        fail(src, path, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + describe(j));
    };
    if (j.is_number_unsigned()) {
        const auto u = j.template get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(hi)) range_error();
        out = static_cast<T>(u);
    } else if (j.is_number_integer()) {
        const auto i = j.template get<std::int64_t>();
        if constexpr (std::is_unsigned_v<T>) {
            if (i < 0 || static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(hi)) range_error();
        } else {
            if (i < static_cast<std::int64_t>(lo) || i > static_cast<std::int64_t>(hi)) range_error();
        }
        out = static_cast<T>(i);
    } else if (j.is_number_float()) {
        // 1e6 is a common way to write a step count: accept floats with an integral value.
        const double d = j.template get<double>();
        if (!std::isfinite(d) || d != std::trunc(d)) fail(src, path, "expected an integer, got " + describe(j));
        if (d < static_cast<double>(lo) || d >= std::ldexp(static_cast<double>(hi / 2 + 1), 1)) range_error();
        out = static_cast<T>(d);
    } else {
        fail(src, path, "expected an integer, got " + describe(j));
    }
}

template <class T, class J>
void read(T& out, const J& j, const std::string& path, const Source* src) {
    if constexpr (Reflected<T>) {
        if (j.is_null()) return;  // "section:" with nothing under it: all defaults
        if (!j.is_object()) fail(src, path, "expected a mapping of keys to values, got " + describe(j));
        for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string& key = it.key();
            bool found = false;
            boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
                if (found || key != key_name(boost::hana::first(pair))) return;
                found = true;
                read(boost::hana::second(pair)(out), it.value(), join_key(path, key), src);
            });
            if (!found) fail(src, join_key(path, key), unknown_key_message<T>(path, key));
        }
    } else if constexpr (is_optional<T>::value) {
        if (j.is_null()) {
            out.reset();
        } else {
            if (!out) out.emplace();
            read(*out, j, path, src);
        }
    } else if constexpr (std::same_as<T, bool>) {
        if (!j.is_boolean()) fail(src, path, "expected true or false, got " + describe(j));
        out = j.template get<bool>();
    } else if constexpr (ConfigInteger<T>) {
        read_integer(out, j, path, src);
    } else if constexpr (std::floating_point<T>) {
        if (!j.is_number()) fail(src, path, "expected a number, got " + describe(j));
        const double d = j.template get<double>();
        if (!std::isfinite(d) || std::abs(d) > static_cast<double>(std::numeric_limits<T>::max()))
            fail(src, path, "expected a finite number, got " + describe(j));
        out = static_cast<T>(d);
    } else if constexpr (std::same_as<T, std::string>) {
        if (!j.is_string()) fail(src, path, "expected a string, got " + describe(j));
        out = j.template get<std::string>();
    } else if constexpr (NamedEnum<T>) {
        std::optional<T> e;
        if (j.is_string()) e = enum_from_name<T>(j.template get<std::string>());
        if (!e) fail(src, path, "expected one of " + enum_choices<T>() + ", got " + describe(j));
        out = *e;
    } else if constexpr (is_vector<T>::value) {
        if (!j.is_array()) fail(src, path, "expected a list, got " + describe(j));
        T v;
        v.reserve(j.size());
        for (std::size_t i = 0; i < j.size(); ++i) {
            typename T::value_type e{};
            read(e, j[i], join_index(path, i), src);
            v.push_back(std::move(e));
        }
        out = std::move(v);
    } else if constexpr (is_std_array<T>::value) {
        constexpr std::size_t n = std::tuple_size_v<T>;
        if (!j.is_array() || j.size() != n)
            fail(src, path, "expected a list of " + std::to_string(n) + (n == 1 ? " value" : " values") + ", got " + describe(j));
        for (std::size_t i = 0; i < n; ++i) read(out[i], j[i], join_index(path, i), src);
    } else if constexpr (is_eigen_vector<T>::value) {
        constexpr int rows = T::RowsAtCompileTime;
        if (!j.is_array()) fail(src, path, "expected a list, got " + describe(j));
        if constexpr (rows != Eigen::Dynamic) {
            if (j.size() != static_cast<std::size_t>(rows))
                fail(src, path, "expected a list of " + std::to_string(rows) + " values, got " + describe(j));
        }
        T v(static_cast<Eigen::Index>(j.size()));
        for (std::size_t i = 0; i < j.size(); ++i) read(v(static_cast<Eigen::Index>(i)), j[i], join_index(path, i), src);
        out = std::move(v);
    } else {
        static_assert(dependent_false<T>,
                      "persist::config: unsupported member type (supported: adapted structs, std::vector, "
                      "std::array, std::optional, std::string, bool, integers, floating point, enums with "
                      "persist::config::enum_names, Eigen column vectors)");
    }
}

template <class T>
Json write(const T& v) {
    if constexpr (Reflected<T>) {
        Json o = Json::object();
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            o[key_name(boost::hana::first(pair))] = write(boost::hana::second(pair)(v));
        });
        return o;
    } else if constexpr (is_optional<T>::value) {
        return v ? write(*v) : Json(nullptr);
    } else if constexpr (std::same_as<T, bool> || ConfigInteger<T> || std::same_as<T, std::string>) {
        return Json(v);
    } else if constexpr (std::floating_point<T>) {
        return Json(static_cast<double>(v));
    } else if constexpr (NamedEnum<T>) {
        return Json(std::string(enum_name(v)));
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        Json a = Json::array();
        for (const auto& e : v) a.push_back(write(e));
        return a;
    } else if constexpr (is_eigen_vector<T>::value) {
        Json a = Json::array();
        for (Eigen::Index i = 0; i < v.size(); ++i) a.push_back(write(v(i)));
        return a;
    } else {
        static_assert(dependent_false<T>, "persist::config: unsupported member type (see read)");
    }
}

/// Reads a whole file; persist::IoError naming it when it cannot be read.
inline std::string read_text_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw IoError("config file \"" + path.string() + "\": cannot open (no such file)");
    if (std::filesystem::is_directory(path, ec))
        throw IoError("config file \"" + path.string() + "\": cannot open (is a directory)");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("config file \"" + path.string() + "\": cannot open for reading");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) throw IoError("config file \"" + path.string() + "\": read error");
    return std::move(ss).str();
}

/// 1-based line of the byte at `offset` (line_starts: offsets where lines begin).
inline Mark mark_at(const std::vector<std::size_t>& line_starts, std::size_t offset) {
    const auto it = std::upper_bound(line_starts.begin(), line_starts.end(), offset);
    const auto line = static_cast<std::size_t>(it - line_starts.begin());  // >= 1
    return Mark{static_cast<int>(line), static_cast<int>(offset - line_starts[line - 1] + 1)};
}

/// An input iterator over a text that records how many bytes the JSON lexer has consumed, so
/// SAX events can be given a line.
struct CountingIterator {
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;
    const char* p = nullptr;
    const char* base = nullptr;
    std::size_t* consumed = nullptr;
    reference operator*() const {
        *consumed = static_cast<std::size_t>(p - base) + 1;
        return *p;
    }
    CountingIterator& operator++() {
        ++p;
        return *this;
    }
    CountingIterator operator++(int) {
        auto t = *this;
        ++p;
        return t;
    }
    friend bool operator==(const CountingIterator& a, const CountingIterator& b) { return a.p == b.p; }
    friend bool operator!=(const CountingIterator& a, const CountingIterator& b) { return a.p != b.p; }
};

/// SAX handler building a Json document, recording the line of every key and list element
/// (by key path) and rejecting duplicate keys.
class MarkingSax {
public:
    using number_integer_t = Json::number_integer_t;
    using number_unsigned_t = Json::number_unsigned_t;
    using number_float_t = Json::number_float_t;
    using string_t = Json::string_t;
    using binary_t = Json::binary_t;

    MarkingSax(Json& root, Source& src, std::string_view text, const std::size_t& consumed)
        : root_(root), src_(src), text_(text), consumed_(consumed) {
        line_starts_.push_back(0);
        for (std::size_t i = 0; i < text.size(); ++i)
            if (text[i] == '\n') line_starts_.push_back(i + 1);
    }

    bool null() { return scalar(Json(nullptr)); }
    bool boolean(bool v) { return scalar(Json(v)); }
    bool number_integer(number_integer_t v) { return scalar(Json(v)); }
    bool number_unsigned(number_unsigned_t v) { return scalar(Json(v)); }
    bool number_float(number_float_t v, const string_t&) { return scalar(Json(v)); }
    bool string(string_t& v) { return scalar(Json(std::move(v))); }
    bool binary(binary_t& v) { return scalar(Json(Json::binary(std::move(v)))); }
    bool start_object(std::size_t) { return open(Json::object(), false); }
    bool start_array(std::size_t) { return open(Json::array(), true); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }
    bool key(string_t& k) {
        Frame& f = frames_.back();
        path_.resize(f.base_len);
        path_ = join_key(path_, k);
        src_.marks[path_] = here();
        Json& obj = *stack_.back();
        if (obj.contains(k)) fail(&src_, path_, "duplicate key");
        pending_ = &obj[k];
        return true;
    }
    bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
        std::string msg = ex.what();
        // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
        if (const auto col = msg.find(", column "); col != std::string::npos)
            if (const auto colon = msg.find(": ", col); colon != std::string::npos) msg = msg.substr(colon + 2);
        const Mark m = mark_at(line_starts_, position > 0 ? std::min(position - 1, text_.size()) : 0);
        throw ConfigError(src_.name + ":" + std::to_string(m.line) + ":" + std::to_string(m.column) +
                          ": JSON syntax error: " + msg);
    }

private:
    struct Frame {
        bool array;
        std::size_t index;
        std::size_t base_len;  // length of the container's own path
    };

    /// The line of the last non-blank byte the lexer has read (the end of the current token;
    /// a number's one-byte lookahead is never on a later line than the number itself).
    Mark here() const {
        std::size_t i = std::min(consumed_, text_.size());
        while (i > 0 && std::isspace(static_cast<unsigned char>(text_[i - 1]))) --i;
        return mark_at(line_starts_, i > 0 ? i - 1 : 0);
    }
    /// Where the next value goes; sets the path of a list element.
    Json* place(Json&& v) {
        if (stack_.empty()) {
            root_ = std::move(v);
            src_.marks[std::string()] = here();
            return &root_;
        }
        Frame& f = frames_.back();
        if (f.array) {
            path_.resize(f.base_len);
            path_ = join_index(path_, f.index);
            src_.marks[path_] = here();
            stack_.back()->push_back(std::move(v));
            return &stack_.back()->back();
        }
        *pending_ = std::move(v);
        return pending_;
    }
    void done_value() {
        if (frames_.empty()) return;
        Frame& f = frames_.back();
        path_.resize(f.base_len);
        if (f.array) ++f.index;
    }
    bool scalar(Json&& v) {
        place(std::move(v));
        done_value();
        return true;
    }
    bool open(Json&& v, bool array) {
        Json* p = place(std::move(v));
        stack_.push_back(p);
        frames_.push_back(Frame{array, 0, path_.size()});
        return true;
    }
    bool close() {
        stack_.pop_back();
        frames_.pop_back();
        done_value();
        return true;
    }

    Json& root_;
    Source& src_;
    std::string_view text_;
    const std::size_t& consumed_;
    std::vector<std::size_t> line_starts_;
    std::vector<Json*> stack_;
    std::vector<Frame> frames_;
    Json* pending_ = nullptr;
    std::string path_;
};

/// Parses JSON text into a document and fills `src.marks`. persist::ConfigError
/// "name:line:column: JSON syntax error: ..." on malformed text, "name:line: path: duplicate
/// key" on a repeated key.
inline Json parse_json_text(std::string_view text, Source& src) {
    Json root;
    std::size_t consumed = 0;
    MarkingSax sax(root, src, text, consumed);
    CountingIterator first{text.data(), text.data(), &consumed};
    CountingIterator last{text.data() + text.size(), text.data(), &consumed};
    Json::sax_parse(first, last, &sax);
    return root;
}

}  // namespace detail

/// Writes `obj` as a JSON document: every member, in declaration order; nullopt as null,
/// enums by name. from_json(to_json(x)) equals x.
template <Reflected T>
Json to_json(const T& obj) {
    return detail::write(obj);
}

/// Reads `j` into `out` (keys missing from `j` keep the values `out` already has), then runs
/// every rule. `src` (optional) adds file and line to messages.
template <Reflected T, class J>
    requires detail::JsonValue<J>
void from_json(const J& j, T& out, const Source* src = nullptr) {
    detail::read(out, j, std::string(), src);
    validate(out, src);
}

/// A T from defaults overridden by `j` (any nlohmann::basic_json), validated.
template <Reflected T, class J>
    requires detail::JsonValue<J>
T from_json(const J& j, const Source* src = nullptr) {
    T out{};
    from_json(j, out, src);
    return out;
}

/// A T from JSON text. `name` (e.g. a file name) prefixes messages with "name:line: ".
template <Reflected T>
T load_json_string(std::string_view text, std::string name = "<json>") {
    Source src{std::move(name), {}};
    const Json j = detail::parse_json_text(text, src);
    return from_json<T>(j, &src);
}

/// A T from a JSON file (persist::IoError when it cannot be read).
template <Reflected T>
T load_json_file(const std::filesystem::path& path) {
    return load_json_string<T>(detail::read_text_file(path), path.string());
}

}  // namespace persist::config
