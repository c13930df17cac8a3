#pragma once
/// @file reflect.hpp
/// Compile-time reflection of configuration structs (Boost.Hana) and the pieces every loader
/// shares: key paths, source locations, value rules and the validation walk.
///
/// A config struct is a plain aggregate with default member initialisers, adapted OUTSIDE
/// its definition with BOOST_HANA_ADAPT_STRUCT (at global namespace scope), so it keeps its
/// defaults and designated initialisers (`ShieldConfig{.conf = 0.9}`):
///
///     struct Mine { double rate = 0.1; std::vector<std::int64_t> hidden{64, 64}; };
///     BOOST_HANA_ADAPT_STRUCT(Mine, rate, hidden);
///
/// Supported member types: nested adapted structs, std::vector, std::array, std::optional,
/// std::string, bool, integers, float/double, enums with a name table (`enum_names<E>`) and
/// Eigen column vectors. Every member has a default: a key missing from the input keeps it.
///
/// Range rules live next to the fields, in a `validate(Checker&) const` member (or, for a
/// struct you cannot edit, in a `persist::config::rules<T>` specialisation). They name the
/// member itself, never a string, so a renamed field cannot leave a stale rule behind:
///
///     void validate(persist::config::Checker& v) const {
///         v.check(rate, persist::config::in_open_closed(0.0, 1.0));
///         v.each(hidden, persist::config::positive);
///     }
///
/// docs/config.md has the full story.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <Eigen/Core>
#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

#include "persist/core/error.hpp"

namespace persist::config {

// ------------------------------------------------------------------------------------------
// Enum name tables
// ------------------------------------------------------------------------------------------

/// Specialise for every enum a config reads from a string:
///
///     template <> struct persist::config::enum_names<Algo> {
///         static constexpr std::array<std::pair<Algo, std::string_view>, 3> table{
///             {{Algo::SAC, "SAC"}, {Algo::PPO, "PPO"}, {Algo::TD3, "TD3"}}};
///     };
///
/// Names are matched exactly (case-sensitive); the first entry of a value is the one written.
template <class E>
struct enum_names;

/// An enum with a name table.
template <class E>
concept NamedEnum = std::is_enum_v<E> && requires {
    { enum_names<E>::table.size() } -> std::convertible_to<std::size_t>;
};

/// The written name of `e` ("?" when the table has no entry for it).
template <NamedEnum E>
std::string_view enum_name(E e) {
    for (const auto& [value, name] : enum_names<E>::table)
        if (value == e) return name;
    return "?";
}

/// The value named `name`, or nullopt.
template <NamedEnum E>
std::optional<E> enum_from_name(std::string_view name) {
    for (const auto& [value, n] : enum_names<E>::table)
        if (n == name) return value;
    return std::nullopt;
}

/// `"SAC", "PPO", "TD3"`: the allowed names, quoted, for messages.
template <NamedEnum E>
std::string enum_choices() {
    std::string s;
    for (const auto& [value, name] : enum_names<E>::table) {
        (void)value;
        if (!s.empty()) s += ", ";
        s += '"';
        s += name;
        s += '"';
    }
    return s;
}

// ------------------------------------------------------------------------------------------
// Type classification
// ------------------------------------------------------------------------------------------

/// A struct adapted with BOOST_HANA_ADAPT_STRUCT (or BOOST_HANA_DEFINE_STRUCT).
template <class T>
concept Reflected = boost::hana::Struct<T>::value;

/// An integer that is not bool or a character type.
template <class T>
concept ConfigInteger = std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char> &&
                        !std::same_as<T, char8_t> && !std::same_as<T, char16_t> &&
                        !std::same_as<T, char32_t> && !std::same_as<T, wchar_t>;

namespace detail {
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};
template <class T>
struct is_eigen_vector : std::false_type {};
template <class S, int R, int O, int MR, int MC>
struct is_eigen_vector<Eigen::Matrix<S, R, 1, O, MR, MC>> : std::true_type {};
template <class>
inline constexpr bool dependent_false = false;

/// Name of a Hana struct member key as a C string.
template <class Key>
const char* key_name(const Key& key) {
    return boost::hana::to<char const*>(key);
}

/// "a.b" / "b" (at the root).
inline std::string join_key(const std::string& path, std::string_view key) {
    std::string s = path;
    if (!s.empty()) s += '.';
    s += key;
    return s;
}
/// "a.b[3]".
inline std::string join_index(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}
/// How a path is shown: the root is "(top level)".
inline std::string display_path(const std::string& path) {
    return path.empty() ? std::string("(top level)") : path;
}

/// Shortest decimal that reads back as v ("0.1", "1e-05", "inf").
inline std::string format_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// "\"text\"" (built by appending: GCC 12's -Wrestrict misfires on "lit" + std::string&&).
inline std::string quote(std::string_view text) {
    std::string s;
    s.reserve(text.size() + 2);
    s += '"';
    s += text;
    s += '"';
    return s;
}

/// A value as it appears in messages: numbers as written, strings quoted.
template <class V>
std::string format_value(const V& v) {
    if constexpr (std::same_as<V, bool>) {
        return v ? "true" : "false";
    } else if constexpr (ConfigInteger<V>) {
        return std::to_string(v);
    } else if constexpr (std::floating_point<V>) {
        return format_double(static_cast<double>(v));
    } else if constexpr (std::convertible_to<const V&, std::string_view>) {
        return quote(std::string_view(v));
    } else if constexpr (NamedEnum<V>) {
        return quote(enum_name(v));
    } else if constexpr (is_vector<V>::value || is_std_array<V>::value) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_value(v[i]);
        return s + "]";
    } else {
        return "(value)";
    }
}

/// Levenshtein distance, for "did you mean" hints.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}
}  // namespace detail

/// The member names of a reflected struct, in declaration order.
template <Reflected S>
std::vector<std::string_view> field_names() {
    std::vector<std::string_view> names;
    boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
        names.emplace_back(detail::key_name(boost::hana::first(pair)));
    });
    return names;
}

// ------------------------------------------------------------------------------------------
// Source locations
// ------------------------------------------------------------------------------------------

/// 1-based line and column of a value in its file (0 = unknown).
struct Mark {
    int line = 0;
    int column = 0;
};

/// Where a document came from: its name (file path, or a label for a string) and the
/// location of every key / list element, by key path ("viability.constraints[1]").
struct Source {
    std::string name;
    std::unordered_map<std::string, Mark> marks;

    /// The nearest known location of `path` (itself, else its closest ancestor).
    Mark find(std::string path) const {
        for (;;) {
            if (auto it = marks.find(path); it != marks.end() && it->second.line > 0) return it->second;
            if (path.empty()) return {};
            const auto cut = path.find_last_of(".[");
            path.resize(cut == std::string::npos ? 0 : cut);
        }
    }
    /// "file:14: " / "file: " / "" (no name).
    std::string where(const std::string& path) const {
        if (name.empty()) return {};
        const Mark m = find(path);
        return m.line > 0 ? name + ":" + std::to_string(m.line) + ": " : name + ": ";
    }
};

/// Throws persist::ConfigError "[file:line: ]path: what".
[[noreturn]] inline void fail(const Source* src, const std::string& path, const std::string& what) {
    throw ConfigError((src ? src->where(path) : std::string()) + detail::display_path(path) + ": " + what);
}

// ------------------------------------------------------------------------------------------
// Value rules
// ------------------------------------------------------------------------------------------
// A rule has `bool ok(const V&) const` and `std::string expected<V>() const`; the message is
// "<path>: expected <expected>, got <value>". Integer fields say "integer", others "number".

namespace detail {
template <class V>
constexpr const char* kind_a() {
    return ConfigInteger<V> ? "an integer" : "a number";
}
template <class V>
constexpr const char* kind_bare() {
    return ConfigInteger<V> ? "integer" : "number";
}
}  // namespace detail

/// > 0.
struct Positive {
    template <class V>
    bool ok(const V& v) const { return v > V(0); }
    template <class V>
    std::string expected() const { return std::string("a positive ") + detail::kind_bare<V>(); }
};
/// >= 0.
struct NonNegative {
    template <class V>
    bool ok(const V& v) const { return v >= V(0); }
    template <class V>
    std::string expected() const { return std::string("a non-negative ") + detail::kind_bare<V>(); }
};
inline constexpr Positive positive{};
inline constexpr NonNegative non_negative{};

/// lo <= v (or lo < v).
struct Above {
    double lo;
    bool open = false;
    template <class V>
    bool ok(const V& v) const {
        const auto x = static_cast<long double>(v);
        return open ? x > lo : x >= lo;
    }
    template <class V>
    std::string expected() const {
        return std::string(detail::kind_a<V>()) + (open ? " > " : " >= ") + detail::format_double(lo);
    }
};
/// v <= hi.
struct Below {
    double hi;
    template <class V>
    bool ok(const V& v) const { return static_cast<long double>(v) <= hi; }
    template <class V>
    std::string expected() const { return std::string(detail::kind_a<V>()) + " <= " + detail::format_double(hi); }
};
/// v in an interval; each end open or closed.
struct Interval {
    double lo, hi;
    bool lo_open = false, hi_open = false;
    template <class V>
    bool ok(const V& v) const {
        const auto x = static_cast<long double>(v);
        return (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    }
    template <class V>
    std::string expected() const {
        return std::string(detail::kind_a<V>()) + " in " + (lo_open ? "(" : "[") + detail::format_double(lo) +
               ", " + detail::format_double(hi) + (hi_open ? ")" : "]");
    }
};
inline constexpr Above at_least(double lo) { return Above{lo, false}; }
inline constexpr Above greater_than(double lo) { return Above{lo, true}; }
inline constexpr Below at_most(double hi) { return Below{hi}; }
inline constexpr Interval in_closed(double lo, double hi) { return Interval{lo, hi, false, false}; }
inline constexpr Interval in_open_closed(double lo, double hi) { return Interval{lo, hi, true, false}; }
inline constexpr Interval in_closed_open(double lo, double hi) { return Interval{lo, hi, false, true}; }
inline constexpr Interval in_open(double lo, double hi) { return Interval{lo, hi, true, true}; }

/// A non-empty string or list.
struct NonEmpty {
    template <class V>
    bool ok(const V& v) const { return !v.empty(); }
    template <class V>
    std::string expected() const {
        return std::convertible_to<const V&, std::string_view> ? "a non-empty string" : "a non-empty list";
    }
};
inline constexpr NonEmpty non_empty{};

/// A string among a fixed set.
struct OneOf {
    std::vector<std::string> allowed;
    template <class V>
    bool ok(const V& v) const { return std::find(allowed.begin(), allowed.end(), v) != allowed.end(); }
    template <class V>
    std::string expected() const {
        std::string s = "one of ";
        for (std::size_t i = 0; i < allowed.size(); ++i) s += (i ? ", \"" : "\"") + allowed[i] + "\"";
        return s;
    }
};
inline OneOf one_of(std::vector<std::string> allowed) { return OneOf{std::move(allowed)}; }

// ------------------------------------------------------------------------------------------
// Checker: what a struct's validate() talks to
// ------------------------------------------------------------------------------------------

/// Checks the members of one struct at one key path. Members are passed by reference and
/// named through reflection (address + type), so rules never spell a key. Every failure is a
/// persist::ConfigError "[file:line: ]<path of the member>: <what>".
class Checker {
public:
    template <Reflected S>
    Checker(const S& self, std::string path, const Source* src) : path_(std::move(path)), src_(src) {
        boost::hana::for_each(boost::hana::accessors<S>(), [&](auto pair) {
            const auto& member = boost::hana::second(pair)(self);
            using M = std::remove_cvref_t<decltype(member)>;
            fields_.push_back({detail::key_name(boost::hana::first(pair)), static_cast<const void*>(&member),
                               std::type_index(typeid(M))});
        });
    }

    /// `member` must satisfy `rule`.
    template <class V, class Rule>
    void check(const V& member, const Rule& rule) const {
        (void)field_of(member);  // a rule that names a non-member is a bug even when it passes
        if (!rule.ok(member)) fail(member, "expected " + rule.template expected<V>() + ", got " + detail::format_value(member));
    }
    /// Every element of the list `member` must satisfy `rule` (path "member[i]").
    template <class V, class Rule>
    void each(const V& member, const Rule& rule) const {
        using E = std::remove_cvref_t<decltype(member[0])>;
        (void)field_of(member);
        for (std::size_t i = 0; i < static_cast<std::size_t>(member.size()); ++i) {
            const auto& e = member[static_cast<decltype(member.size())>(i)];
            if (!rule.ok(e))
                fail_at(member, i, "expected " + rule.template expected<E>() + ", got " + detail::format_value(e));
        }
    }
    /// Fails at `member` when `condition` is false.
    template <class V>
    void require(bool condition, const V& member, const std::string& what) const {
        (void)field_of(member);
        if (!condition) fail(member, what);
    }
    /// Fails at `member`.
    template <class V>
    [[noreturn]] void fail(const V& member, const std::string& what) const {
        config::fail(src_, path_of(member), what);
    }
    /// Fails at element `index` of the list `member`.
    template <class V>
    [[noreturn]] void fail_at(const V& member, std::size_t index, const std::string& what) const {
        config::fail(src_, detail::join_index(path_of(member), index), what);
    }
    /// Fails at the struct itself.
    [[noreturn]] void fail_here(const std::string& what) const { config::fail(src_, path_, what); }

    /// A checker for the nested struct `member`, for rules that span several levels.
    template <Reflected S2>
    Checker sub(const S2& member) const {
        return Checker(member, path_of(member), src_);
    }
    /// Full key path of `member` ("viability.shield.conf").
    template <class V>
    std::string path_of(const V& member) const {
        return detail::join_key(path_, field_of(member).name);
    }
    const std::string& path() const noexcept { return path_; }
    const Source* source() const noexcept { return src_; }

private:
    struct Field {
        std::string_view name;
        const void* address;
        std::type_index type;
    };
    /// The member `member` is (same address and type); std::logic_error otherwise.
    template <class V>
    const Field& field_of(const V& member) const {
        const void* addr = static_cast<const void*>(&member);
        const std::type_index type(typeid(std::remove_cvref_t<V>));
        for (const auto& f : fields_)
            if (f.address == addr && f.type == type) return f;
        throw std::logic_error("persist::config::Checker at \"" + detail::display_path(path_) +
                               "\": the checked value is not a member of this struct "
                               "(a rule must pass the member itself, e.g. v.check(conf, ...))");
    }

    std::string path_;
    const Source* src_;
    std::vector<Field> fields_;
};

/// Rules for a struct you cannot edit: specialise with
/// `static void check(const T&, Checker&)`.
template <class T>
struct rules;

template <class T>
concept HasValidateMember = requires(const T& t, Checker& v) { t.validate(v); };
template <class T>
concept HasRules = requires(const T& t, Checker& v) { rules<T>::check(t, v); };

// ------------------------------------------------------------------------------------------
// Generic walks: validate, equal, first_difference
// ------------------------------------------------------------------------------------------

namespace detail {
/// Children first (declaration order), then the struct's own rules.
template <class T>
void validate_tree(const T& obj, const std::string& path, const Source* src) {
    if constexpr (Reflected<T>) {
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            validate_tree(boost::hana::second(pair)(obj), join_key(path, key_name(boost::hana::first(pair))), src);
        });
        if constexpr (HasValidateMember<T> || HasRules<T>) {
            Checker v(obj, path, src);
            if constexpr (HasValidateMember<T>)
                obj.validate(v);
            else
                rules<T>::check(obj, v);
        }
    } else if constexpr (is_optional<T>::value) {
        if (obj) validate_tree(*obj, path, src);
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        if constexpr (Reflected<typename T::value_type>)
            for (std::size_t i = 0; i < obj.size(); ++i) validate_tree(obj[i], join_index(path, i), src);
    }
}

template <class T>
std::optional<std::string> difference(const T& a, const T& b, const std::string& path) {
    if constexpr (Reflected<T>) {
        std::optional<std::string> d;
        boost::hana::for_each(boost::hana::accessors<T>(), [&](auto pair) {
            if (d) return;
            const auto acc = boost::hana::second(pair);
            d = difference(acc(a), acc(b), join_key(path, key_name(boost::hana::first(pair))));
        });
        return d;
    } else if constexpr (is_optional<T>::value) {
        if (a.has_value() != b.has_value()) return display_path(path);
        return a ? difference(*a, *b, path) : std::nullopt;
    } else if constexpr (is_vector<T>::value || is_std_array<T>::value) {
        if (a.size() != b.size()) return display_path(path);
        for (std::size_t i = 0; i < a.size(); ++i)
            if (auto d = difference(a[i], b[i], join_index(path, i))) return d;
        return std::nullopt;
    } else if constexpr (is_eigen_vector<T>::value) {
        if (a.size() != b.size() || !(a.array() == b.array()).all()) return display_path(path);
        return std::nullopt;
    } else {
        static_assert(std::equality_comparable<T>, "persist::config: member type without ==");
        if (!(a == b)) return display_path(path);
        return std::nullopt;
    }
}
}  // namespace detail

/// Run every rule of `obj` and of everything it contains (persist::ConfigError on the first
/// failure, naming its key path). `src` adds file and line to messages.
template <Reflected T>
void validate(const T& obj, const Source* src = nullptr) {
    detail::validate_tree(obj, std::string(), src);
}

/// The key path of the first member where `a` and `b` differ (declaration order), or nullopt
/// when they are equal. Numbers compare exactly.
template <Reflected T>
std::optional<std::string> first_difference(const T& a, const T& b) {
    return detail::difference(a, b, std::string());
}

/// Member-wise equality of two reflected structs (exact for numbers).
template <Reflected T>
bool equal(const T& a, const T& b) {
    return !first_difference(a, b).has_value();
}

}  // namespace persist::config
