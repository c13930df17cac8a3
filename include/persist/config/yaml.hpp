#pragma once
/// @file yaml.hpp
/// YAML front end of the reflective loader, and `load_config(path)` for .json / .yaml / .yml.
///
/// REQUIRES yaml-cpp (a compiled library): link the `persist::yaml` target (or `yaml-cpp`
/// directly). Everything else in persist/config/ is header-only and needs only nlohmann_json.
///
///     auto cfg = persist::config::load_config("examples/configs/gridlife.yaml");
///
/// A YAML document is converted to the same JSON document the JSON loader walks, keeping the
/// line of every key and list element, so messages read
/// `gridlife.yaml:22: train.batch_size: expected a positive integer, got -3`.
///
/// Scalars follow the YAML 1.2 core schema: a plain (unquoted) scalar is null (`~`, `null`,
/// empty), a boolean (`true`/`false`, any case form YAML allows), an integer (`12`, `-3`,
/// `0x1F`, `0o17`), a float (`0.5`, `1e6`, `.inf`, `.nan`) or else a string; a quoted scalar
/// or one tagged `!!str` is always a string. So `batch_size: "1024"` is a string (a type
/// error), and `yes` / `on` are strings, not booleans. Duplicate keys, non-scalar keys and
/// several documents in one file are errors.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "persist/config/json.hpp"
#include "persist/config/persist_config.hpp"
#include "persist/config/reflect.hpp"
#include "persist/core/error.hpp"

namespace persist::config {

namespace detail {

inline Mark yaml_mark(const YAML::Mark& m) {
    if (m.is_null()) return {};
    return Mark{m.line + 1, m.column + 1};
}

inline bool all_of_chars(std::string_view s, bool (*pred)(char)) {
    return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}

/// A plain scalar resolved by the YAML 1.2 core schema (null is handled by yaml-cpp).
inline Json resolve_plain_scalar(const std::string& s) {
    if (s == "true" || s == "True" || s == "TRUE") return Json(true);
    if (s == "false" || s == "False" || s == "FALSE") return Json(false);
    if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return Json(nullptr);
    if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF")
        return Json(std::numeric_limits<double>::infinity());
    if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return Json(-std::numeric_limits<double>::infinity());
    if (s == ".nan" || s == ".NaN" || s == ".NAN") return Json(std::numeric_limits<double>::quiet_NaN());
    auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
    // Integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+ (too large: read as a float).
    {
        std::string_view v = s;
        bool neg = false;
        if (!v.empty() && (v[0] == '-' || v[0] == '+')) neg = v[0] == '-', v.remove_prefix(1);
        if (all_of_chars(v, [](char c) { return c >= '0' && c <= '9'; })) {
            std::uint64_t u = 0;
            const auto r = std::from_chars(v.data(), v.data() + v.size(), u);
            if (r.ec == std::errc() && r.ptr == v.data() + v.size()) {
                if (!neg) return Json(u);
                if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1)
                    return Json(u == 0 ? std::int64_t(0) : static_cast<std::int64_t>(~(u - 1)));
            }
            // fall through to float
        }
    }
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
        const int base = s[1] == 'o' ? 8 : 16;
        std::uint64_t u = 0;
        const auto r = std::from_chars(s.data() + 2, s.data() + s.size(), u, base);
        if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return Json(u);
    }
    // Floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    {
        std::size_t i = 0;
        const std::size_t n = s.size();
        if (i < n && (s[i] == '-' || s[i] == '+')) ++i;
        std::size_t int_digits = 0, frac_digits = 0;
        while (i < n && is_digit(s[i])) ++i, ++int_digits;
        if (i < n && s[i] == '.') {
            ++i;
            while (i < n && is_digit(s[i])) ++i, ++frac_digits;
        }
        bool ok = int_digits > 0 || frac_digits > 0;
        if (ok && i < n && (s[i] == 'e' || s[i] == 'E')) {
            ++i;
            if (i < n && (s[i] == '-' || s[i] == '+')) ++i;
            std::size_t exp_digits = 0;
            while (i < n && is_digit(s[i])) ++i, ++exp_digits;
            ok = exp_digits > 0;
        }
        if (ok && i == n) {
            const char* b = s.data() + (s[0] == '+' ? 1 : 0);
            double d = 0;
            const auto r = std::from_chars(b, s.data() + n, d);
            if (r.ptr == s.data() + n && (r.ec == std::errc() || r.ec == std::errc::result_out_of_range)) {
                if (r.ec == std::errc::result_out_of_range) d = std::strtod(s.c_str(), nullptr);  // +-inf or 0
                return Json(d);
            }
        }
    }
    return Json(s);
}

/// Converts a YAML node to a Json document, recording marks by key path.
inline Json yaml_to_json(const YAML::Node& node, const std::string& path, Source& src) {
    switch (node.Type()) {
        case YAML::NodeType::Undefined:
        case YAML::NodeType::Null: return Json(nullptr);
        case YAML::NodeType::Scalar: {
            const std::string& tag = node.Tag();
            if (tag == "!" || tag == "tag:yaml.org,2002:str") return Json(node.Scalar());
            return resolve_plain_scalar(node.Scalar());
        }
        case YAML::NodeType::Sequence: {
            Json a = Json::array();
            std::size_t i = 0;
            for (const auto& e : node) {
                const std::string p = join_index(path, i++);
                src.marks[p] = yaml_mark(e.Mark());
                a.push_back(yaml_to_json(e, p, src));
            }
            return a;
        }
        case YAML::NodeType::Map: {
            Json o = Json::object();
            for (const auto& kv : node) {
                const YAML::Node& k = kv.first;
                if (!k.IsScalar()) fail(&src, path, "expected a scalar key, got a " +
                                        std::string(k.IsSequence() ? "list" : k.IsMap() ? "mapping" : "null") +
                                        " at line " + std::to_string(yaml_mark(k.Mark()).line));
                const std::string key = k.Scalar();
                const std::string p = join_key(path, key);
                const Mark km = yaml_mark(k.Mark());
                if (o.contains(key)) {
                    const Mark first = src.marks[p];
                    src.marks[p] = km;
                    fail(&src, p, "duplicate key (first at line " + std::to_string(first.line) + ")");
                }
                src.marks[p] = km;
                o[key] = yaml_to_json(kv.second, p, src);
            }
            return o;
        }
    }
    return Json(nullptr);
}

/// Parses YAML text (one document) into a Json document with marks. persist::ConfigError
/// "name:line:column: YAML syntax error: ..." on malformed text.
inline Json parse_yaml_text(std::string_view text, Source& src) {
    std::vector<YAML::Node> docs;
    try {
        docs = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& e) {
        const Mark m = yaml_mark(e.mark);
        throw ConfigError(src.name + (m.line > 0 ? ":" + std::to_string(m.line) + ":" + std::to_string(m.column) : "") +
                          ": YAML syntax error: " + e.msg);
    }
    if (docs.empty()) return Json(nullptr);
    if (docs.size() > 1)
        throw ConfigError(src.name + ":" + std::to_string(yaml_mark(docs[1].Mark()).line) +
                          ": expected one YAML document, got " + std::to_string(docs.size()));
    src.marks[std::string()] = yaml_mark(docs[0].Mark());
    return yaml_to_json(docs[0], std::string(), src);
}

inline void emit_yaml(YAML::Emitter& out, const Json& j) {
    switch (j.type()) {
        case Json::value_t::null: out << YAML::Null; break;
        case Json::value_t::boolean: out << j.get<bool>(); break;
        case Json::value_t::number_integer: out << j.get<std::int64_t>(); break;
        case Json::value_t::number_unsigned: out << j.get<std::uint64_t>(); break;
        case Json::value_t::number_float: {
            // Shortest round-trip form; make sure it reads back as a number, not a string.
            std::string s = format_double(j.get<double>());
            if (s == "inf") s = ".inf";
            else if (s == "-inf") s = "-.inf";
            else if (s == "nan") s = ".nan";
            else if (s.find_first_of(".e") == std::string::npos) s += ".0";  // 1.0, not 1: still a float
            out << s;
            break;
        }
        case Json::value_t::string: out << YAML::DoubleQuoted << j.get<std::string>(); break;
        case Json::value_t::array: {
            const bool flat = std::all_of(j.begin(), j.end(), [](const Json& e) { return e.is_primitive(); });
            out << (flat ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
            for (const auto& e : j) emit_yaml(out, e);
            out << YAML::EndSeq;
            break;
        }
        case Json::value_t::object: {
            out << (j.empty() ? YAML::Flow : YAML::Block) << YAML::BeginMap;
            for (auto it = j.begin(); it != j.end(); ++it) {
                out << YAML::Key << it.key() << YAML::Value;
                emit_yaml(out, it.value());
            }
            out << YAML::EndMap;
            break;
        }
        default: throw ConfigError("to_yaml: binary values cannot be written as YAML");
    }
}

}  // namespace detail

/// A T from YAML text. `name` (e.g. a file name) prefixes messages with "name:line: ".
template <Reflected T>
T load_yaml_string(std::string_view text, std::string name = "<yaml>") {
    Source src{std::move(name), {}};
    const Json j = detail::parse_yaml_text(text, src);
    return from_json<T>(j, &src);
}

/// A T from a YAML file (persist::IoError when it cannot be read).
template <Reflected T>
T load_yaml_file(const std::filesystem::path& path) {
    return load_yaml_string<T>(detail::read_text_file(path), path.string());
}

/// The JSON document of a YAML text (core-schema scalars), e.g. to compare documents.
inline Json yaml_to_json(std::string_view text, std::string name = "<yaml>") {
    Source src{std::move(name), {}};
    return detail::parse_yaml_text(text, src);
}

/// A JSON document written as block-style YAML (lists of scalars in flow style, strings
/// double-quoted, numbers in their shortest round-trip form).
inline std::string json_to_yaml(const Json& j) {
    YAML::Emitter out;
    out.SetIndent(2);
    detail::emit_yaml(out, j);
    return std::string(out.c_str()) + "\n";
}

/// `obj` as YAML: every member in declaration order. load_yaml_string<T>(to_yaml(x)) equals x.
template <Reflected T>
std::string to_yaml(const T& obj) {
    return json_to_yaml(to_json(obj));
}

/// Loads a config file by extension: .json (JSON), .yaml / .yml (YAML), case-insensitive.
/// persist::ConfigError for another extension or bad content, persist::IoError when the file
/// cannot be read.
template <Reflected T = PersistConfig>
T load_config(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".json") return load_json_file<T>(path);
    if (ext == ".yaml" || ext == ".yml") return load_yaml_file<T>(path);
    throw ConfigError("config file \"" + path.string() + "\": unknown extension " +
                      (ext.empty() ? std::string("(none)") : "\"" + ext + "\"") + " (expected .json, .yaml or .yml)");
}

}  // namespace persist::config
