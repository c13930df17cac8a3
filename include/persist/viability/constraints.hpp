#pragma once
/// @file constraints.hpp
/// Viability constraints written as strings over the named internal variables, as in the
/// seed's config (section 8):
///
///     "energy >= 0.2"    "temp in [0.3, 0.7]"    "integrity >= 0.6"
///     "energy + 0.5*integrity >= 0.5"    "2*temp - energy <= 1"    "0.2 <= energy"
///
/// Every constraint is LINEAR in x: an expression e(x) = a.x compared with constants. Each
/// yields a margin, positive = safe, in the units of the expression (seed section 1: the
/// viability set V = {x : g_i(x) <= 0}; here margin_i = -g_i):
///
///     e >= t, e > t :  margin = e - t
///     e <= t, e < t :  margin = t - e
///     e in [lo, hi] :  margin = min(e - lo, hi - e)   (both sides: `sides`, `half_spaces`)
///
/// A non-strict constraint holds at margin >= 0 (margin 0 is still safe); a strict one
/// (`<`, `>`) needs margin > 0 (margin 0 is a violation). `satisfied(k, margin)` applies the
/// rule of constraint k. The grammar (EBNF), the error messages and examples are in
/// docs/viability.md.
///
/// ConstraintSet<T> models persist::ViabilityModel: margins of a batch of states (one column
/// per state) in one pass, the gradient of each margin (for gradient-based shields / CBFs), the
/// polytope form G x + h >= 0, per-variable bounds (for "constraint satisfaction rate per
/// variable"), and `interpolate` between a wide and a target set (the seed's curriculum:
/// "start wide tolerances; progressively tighten V").
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "persist/core/error.hpp"
#include "persist/core/types.hpp"

namespace persist::viability {

/// The comparison of a constraint after normalisation (see LinearConstraint).
enum class Sense : std::uint8_t {
    ge,        ///< a.x >= t
    gt,        ///< a.x >  t   (strict)
    le,        ///< a.x <= t
    lt,        ///< a.x <  t   (strict)
    interval,  ///< lo <= a.x <= hi  (closed)
};

inline const char* sense_symbol(Sense s) {
    switch (s) {
        case Sense::ge: return ">=";
        case Sense::gt: return ">";
        case Sense::le: return "<=";
        case Sense::lt: return "<";
        case Sense::interval: return "in";
    }
    return "?";
}

/// One parsed constraint in normal form: e(x) = sum_j a_j x_j compared with constants (any
/// constant term of the written expressions is moved to the thresholds). When every non-zero
/// coefficient is negative the constraint is flipped (a -> -a, >= <-> <=, ...) so that, e.g.,
/// "0.2 <= energy" and "-energy >= -0.2" both read "energy >= 0.2"; flipping negates exactly,
/// so margins are identical either way.
template <class T>
struct LinearConstraint {
    std::string text;  ///< the string as written (canonical form for generated constraints)
    Sense sense = Sense::ge;
    Vec<T> a;          ///< coefficients, one per variable of the set
    T threshold = T(0);  ///< t for ge/gt/le/lt
    T lo = T(0), hi = T(0);  ///< bounds for interval (lo < hi)

    bool strict() const { return sense == Sense::gt || sense == Sense::lt; }
    bool is_interval() const { return sense == Sense::interval; }
    /// The margin rule: strict needs m > 0, non-strict m >= 0 (NaN never satisfies).
    bool satisfied(T margin) const { return strict() ? margin > T(0) : margin >= T(0); }
};

namespace detail {

inline bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_ident_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }

/// True when `s` is a valid variable name: [A-Za-z_][A-Za-z0-9_]*, and not the keyword "in".
inline bool valid_variable_name(std::string_view s) {
    if (s.empty() || !is_ident_start(s[0]) || s == "in") return false;
    return std::all_of(s.begin(), s.end(), is_ident_char);
}

/// Shortest decimal that reads back to the same value ("0.2", "1e-05", "-3").
template <class T>
std::string shortest(T v) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

/// "constraint "<text>": <what> at column <c>[ <hint>]" + the text and a caret line under it
/// (tabs kept so the caret lines up), like a compiler diagnostic. `pos` is 0-based, `len` >= 1
/// marks the extent with '~'.
[[noreturn]] inline void constraint_error(const std::string& text, std::size_t pos, std::size_t len,
                                          const std::string& what, const std::string& hint = {}) {
    std::string caret;
    for (std::size_t i = 0; i < pos && i < text.size(); ++i) caret += (text[i] == '\t') ? '\t' : ' ';
    for (std::size_t i = text.size(); i < pos; ++i) caret += ' ';
    caret += '^';
    if (len > 1) caret.append(len - 1, '~');
    throw ConfigError("constraint \"" + text + "\": " + what + " at column " + std::to_string(pos + 1) +
                      (hint.empty() ? std::string() : " " + hint) + "\n  " + text + "\n  " + caret);
}

enum class Tok : std::uint8_t {
    number, ident, kw_in, plus, minus, star, slash, lparen, rparen, lbracket, rbracket, comma,
    ge, gt, le, lt, end
};

struct Token {
    Tok kind;
    std::size_t pos;  ///< 0-based byte offset
    std::size_t len;
    double value = 0;  ///< numbers
};

/// An affine expression c + sum_j a_j x_j, built by the parser (double precision).
struct Affine {
    std::vector<double> a;
    double c = 0;
    bool has_var() const {
        return std::any_of(a.begin(), a.end(), [](double v) { return v != 0.0; });
    }
};

class ConstraintParser {
public:
    ConstraintParser(const std::string& text, const std::vector<std::string>& names)
        : text_(text), names_(names) {}

    /// Parsed in double; the caller converts to T.
    struct Result {
        Sense sense;
        std::vector<double> a;
        double threshold = 0, lo = 0, hi = 0;
    };

    Result parse() {
        lex();
        std::size_t first = 0;
        while (first < text_.size() && is_space(text_[first])) ++first;
        if (toks_.front().kind == Tok::end) constraint_error(text_, first, 1, "empty constraint");
        const Affine lhs = expr();
        const Token& op = peek();
        Result r;
        if (op.kind == Tok::ge || op.kind == Tok::gt || op.kind == Tok::le || op.kind == Tok::lt) {
            next();
            const Affine rhs = expr();
            expect_end();
            r.a.resize(names_.size());
            for (std::size_t j = 0; j < r.a.size(); ++j) r.a[j] = lhs.a[j] - rhs.a[j];
            r.threshold = rhs.c - lhs.c;
            r.sense = op.kind == Tok::ge ? Sense::ge
                    : op.kind == Tok::gt ? Sense::gt
                    : op.kind == Tok::le ? Sense::le
                                         : Sense::lt;
        } else if (op.kind == Tok::kw_in) {
            next();
            const Token open = peek();
            if (open.kind != Tok::lbracket)
                constraint_error(text_, open.pos, open.len, "expected '[' after 'in', found " + describe(open),
                                 "(intervals are closed: 'x in [lo, hi]')");
            next();
            const Token lo_tok = peek();
            const Affine lo = expr();
            if (lo.has_var())
                constraint_error(text_, lo_tok.pos, span_from(lo_tok), "interval bound must be a constant");
            const Token comma = peek();
            if (comma.kind != Tok::comma)
                constraint_error(text_, comma.pos, comma.len, "expected ',' in interval, found " + describe(comma));
            next();
            const Token hi_tok = peek();
            const Affine hi = expr();
            if (hi.has_var())
                constraint_error(text_, hi_tok.pos, span_from(hi_tok), "interval bound must be a constant");
            const Token close = peek();
            if (close.kind != Tok::rbracket)
                constraint_error(text_, close.pos, close.len, "expected ']' to close the interval, found " +
                                                                  describe(close));
            next();
            expect_end();
            if (!(lo.c < hi.c))
                constraint_error(text_, open.pos, close.pos + 1 - open.pos,
                                 std::string(lo.c == hi.c ? "empty" : "reversed") + " interval [" +
                                     shortest(lo.c) + ", " + shortest(hi.c) + "]",
                                 "(need lower bound < upper bound)");
            r.sense = Sense::interval;
            r.a = lhs.a;
            r.lo = lo.c - lhs.c;
            r.hi = hi.c - lhs.c;
        } else {
            constraint_error(text_, op.pos, op.len,
                             "expected an operator or a comparator ('>=', '<=', '>', '<' or 'in'), found " +
                                 describe(op));
        }
        if (!std::any_of(r.a.begin(), r.a.end(), [](double v) { return v != 0.0; }))
            constraint_error(text_, first, last_nonspace() + 1 - first, "constraint does not depend on any variable");
        return r;
    }

private:
    const Token& peek() const { return toks_[i_]; }
    const Token& next() { return toks_[i_++]; }

    std::size_t last_nonspace() const {
        std::size_t e = text_.size();
        while (e > 0 && is_space(text_[e - 1])) --e;
        return e == 0 ? 0 : e - 1;
    }
    /// Extent from token `t` to the end of the last consumed token.
    std::size_t span_from(const Token& t) const {
        const Token& last = toks_[i_ - 1];
        return last.pos + last.len - t.pos;
    }

    std::string describe(const Token& t) const {
        if (t.kind == Tok::end) return "end of constraint";
        std::string s(1, '\'');  // (not "'" + substr: GCC 12 -Wrestrict false positive)
        s.append(text_, t.pos, t.len);
        s += '\'';
        return s;
    }

    void lex() {
        const std::string& s = text_;
        std::size_t i = 0;
        while (true) {
            while (i < s.size() && is_space(s[i])) ++i;
            if (i >= s.size()) {
                toks_.push_back({Tok::end, s.size(), 1});
                return;
            }
            const char c = s[i];
            const std::size_t start = i;
            if (is_digit(c) || (c == '.' && i + 1 < s.size() && is_digit(s[i + 1]))) {
                while (i < s.size() && is_digit(s[i])) ++i;
                if (i < s.size() && s[i] == '.') {
                    ++i;
                    while (i < s.size() && is_digit(s[i])) ++i;
                }
                // Exponent only when a digit follows "e", "e+" or "e-"; otherwise the number
                // ends before the 'e' (and the parser reports what follows).
                if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
                    std::size_t j = i + 1;
                    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
                    if (j < s.size() && is_digit(s[j])) {
                        i = j;
                        while (i < s.size() && is_digit(s[i])) ++i;
                    }
                }
                double v = 0;
                const auto r = std::from_chars(s.data() + start, s.data() + i, v);
                if (r.ec != std::errc() || r.ptr != s.data() + i || !std::isfinite(v))
                    constraint_error(s, start, i - start, "number '" + s.substr(start, i - start) + "' out of range");
                toks_.push_back({Tok::number, start, i - start, v});
                continue;
            }
            if (is_ident_start(c)) {
                while (i < s.size() && is_ident_char(s[i])) ++i;
                const std::string_view word(s.data() + start, i - start);
                toks_.push_back({word == "in" ? Tok::kw_in : Tok::ident, start, i - start});
                continue;
            }
            auto one = [&](Tok k) {
                toks_.push_back({k, start, 1});
                ++i;
            };
            switch (c) {
                case '+': one(Tok::plus); continue;
                case '-': one(Tok::minus); continue;
                case '*': one(Tok::star); continue;
                case '/': one(Tok::slash); continue;
                case '(': one(Tok::lparen); continue;
                case ')': one(Tok::rparen); continue;
                case '[': one(Tok::lbracket); continue;
                case ']': one(Tok::rbracket); continue;
                case ',': one(Tok::comma); continue;
                case '>':
                case '<': {
                    const bool eq = i + 1 < s.size() && s[i + 1] == '=';
                    const Tok k = c == '>' ? (eq ? Tok::ge : Tok::gt) : (eq ? Tok::le : Tok::lt);
                    toks_.push_back({k, start, eq ? 2u : 1u});
                    i += eq ? 2 : 1;
                    continue;
                }
                case '=': {
                    const std::size_t n = (i + 1 < s.size() && (s[i + 1] == '=' || s[i + 1] == '>' || s[i + 1] == '<')) ? 2 : 1;
                    constraint_error(s, start, n, "'" + s.substr(start, n) + "' is not a comparator",
                                     "(equality constraints are not supported; use '>=', '<=', '>', '<' or 'in')");
                }
                case '!':
                    if (i + 1 < s.size() && s[i + 1] == '=')
                        constraint_error(s, start, 2, "'!=' is not a comparator",
                                         "(use '>=', '<=', '>', '<' or 'in')");
                    [[fallthrough]];
                default: {
                    const unsigned char u = static_cast<unsigned char>(c);
                    const std::string shown = (u >= 0x20 && u < 0x7f) ? std::string(1, c) : "\\x" + hex(u);
                    constraint_error(s, start, 1, "unexpected character '" + shown + "'");
                }
            }
        }
    }
    static std::string hex(unsigned char u) {
        const char* d = "0123456789abcdef";
        return {d[u >> 4], d[u & 15]};
    }

    Affine constant(double c) const { return Affine{std::vector<double>(names_.size(), 0.0), c}; }

    // expr = term { ("+" | "-") term }
    Affine expr() {
        Affine v = term();
        while (peek().kind == Tok::plus || peek().kind == Tok::minus) {
            const bool minus = next().kind == Tok::minus;
            const Affine r = term();
            const double s = minus ? -1.0 : 1.0;
            for (std::size_t j = 0; j < v.a.size(); ++j) v.a[j] += s * r.a[j];
            v.c += s * r.c;
        }
        return v;
    }
    // term = unary { ("*" | "/") unary }   (linear: one side of '*' constant, divisor constant)
    Affine term() {
        Affine v = unary();
        while (peek().kind == Tok::star || peek().kind == Tok::slash) {
            const Token op = next();
            const Affine r = unary();
            if (op.kind == Tok::star) {
                if (v.has_var() && r.has_var())
                    constraint_error(text_, op.pos, 1, "nonlinear term: both factors of '*' depend on variables",
                                     "(constraints must be linear)");
                const Affine& var = v.has_var() ? v : r;
                const double k = v.has_var() ? r.c : v.c;
                Affine out = constant(var.c * k);
                for (std::size_t j = 0; j < out.a.size(); ++j) out.a[j] = var.a[j] * k;
                v = std::move(out);
            } else {
                if (r.has_var())
                    constraint_error(text_, op.pos, 1, "division by an expression that depends on a variable",
                                     "(constraints must be linear)");
                if (r.c == 0.0) constraint_error(text_, op.pos, 1, "division by zero");
                for (double& x : v.a) x /= r.c;
                v.c /= r.c;
            }
        }
        return v;
    }
    // unary = ("+" | "-") unary | primary
    Affine unary() {
        if (peek().kind == Tok::plus) {
            next();
            return unary();
        }
        if (peek().kind == Tok::minus) {
            next();
            Affine v = unary();
            for (double& x : v.a) x = -x;
            v.c = -v.c;
            return v;
        }
        return primary();
    }
    // primary = number | variable | "(" expr ")"
    Affine primary() {
        const Token t = peek();
        switch (t.kind) {
            case Tok::number: next(); return constant(t.value);
            case Tok::ident: {
                next();
                const std::string name = text_.substr(t.pos, t.len);
                for (std::size_t j = 0; j < names_.size(); ++j)
                    if (names_[j] == name) {
                        Affine v = constant(0.0);
                        v.a[j] = 1.0;
                        return v;
                    }
                std::string known;
                for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
                constraint_error(text_, t.pos, t.len, "unknown variable '" + name + "'",
                                 "(known variables: " + (known.empty() ? std::string("none") : known) + ")");
            }
            case Tok::lparen: {
                next();
                Affine v = expr();
                const Token close = peek();
                if (close.kind != Tok::rparen)
                    constraint_error(text_, close.pos, close.len, "expected ')' to match the '(' at column " +
                                                                      std::to_string(t.pos + 1) + ", found " +
                                                                      describe(close));
                next();
                return v;
            }
            default:
                constraint_error(text_, t.pos, t.len, "expected a number or a variable, found " + describe(t));
        }
    }
    void expect_end() {
        const Token& t = peek();
        if (t.kind == Tok::end) return;
        const bool cmp = t.kind == Tok::ge || t.kind == Tok::gt || t.kind == Tok::le || t.kind == Tok::lt ||
                         t.kind == Tok::kw_in;
        constraint_error(text_, t.pos, t.len, "unexpected " + describe(t),
                         cmp ? "(a constraint has one comparator; write a range as 'x in [lo, hi]')"
                             : std::string());
    }

    const std::string& text_;
    const std::vector<std::string>& names_;
    std::vector<Token> toks_;
    std::size_t i_ = 0;
};

}  // namespace detail

/// Parse one constraint string over `variables` (which must be valid names: see
/// ConstraintSet). Throws persist::ConfigError quoting the string with a caret at the problem.
template <class T>
LinearConstraint<T> parse_constraint(const std::string& text, const std::vector<std::string>& variables) {
    detail::ConstraintParser p(text, variables);
    auto r = p.parse();
    // Canonical orientation: flip when every non-zero coefficient is negative (exact negation).
    bool all_neg = true;
    for (double v : r.a)
        if (v > 0) all_neg = false;
    if (all_neg) {
        for (double& v : r.a)
            if (v != 0.0) v = -v;
        switch (r.sense) {
            case Sense::ge: r.sense = Sense::le; r.threshold = -r.threshold; break;
            case Sense::gt: r.sense = Sense::lt; r.threshold = -r.threshold; break;
            case Sense::le: r.sense = Sense::ge; r.threshold = -r.threshold; break;
            case Sense::lt: r.sense = Sense::gt; r.threshold = -r.threshold; break;
            case Sense::interval: {
                const double lo = -r.hi, hi = -r.lo;
                r.lo = lo;
                r.hi = hi;
                break;
            }
        }
    }
    LinearConstraint<T> c;
    c.text = text;
    c.sense = r.sense;
    c.a.resize(static_cast<Index>(r.a.size()));
    for (std::size_t j = 0; j < r.a.size(); ++j) c.a(static_cast<Index>(j)) = static_cast<T>(r.a[j]);
    c.threshold = static_cast<T>(r.threshold);
    c.lo = static_cast<T>(r.lo);
    c.hi = static_cast<T>(r.hi);
    bool finite = std::isfinite(c.threshold) && std::isfinite(c.lo) && std::isfinite(c.hi) && c.a.allFinite();
    if (!finite) {
        std::size_t first = 0;
        while (first < text.size() && detail::is_space(text[first])) ++first;
        detail::constraint_error(text, first, std::max<std::size_t>(1, text.size() - first),
                                 "a coefficient or threshold is not finite in this precision");
    }
    if (c.is_interval() && !(c.lo < c.hi))  // distinct in double, equal after rounding to T
        detail::constraint_error(text, 0, std::max<std::size_t>(1, text.size()),
                                 "interval is empty in this precision");
    return c;
}

/// Bounds on one variable implied by the constraints that involve only that variable
/// (intersected). lo = -inf / hi = +inf when unbounded on that side.
template <class T>
struct VariableBounds {
    T lo = -std::numeric_limits<T>::infinity();
    T hi = std::numeric_limits<T>::infinity();
    bool lo_strict = false, hi_strict = false;
    std::vector<Index> constraints;  ///< the single-variable constraints that imply them

    bool bounded_below() const { return std::isfinite(lo); }
    bool bounded_above() const { return std::isfinite(hi); }
    /// v within the bounds, honouring strictness.
    bool contains(T v) const {
        const bool above = lo_strict ? v > lo : v >= lo;
        const bool below = hi_strict ? v < hi : v <= hi;
        return above && below;
    }
};

/// The two sides of a constraint's margin for one state: `lower` = e - lo (or e - t for
/// >=/>, +inf for <=/<), `upper` = hi - e (or t - e for <=/<, +inf for >=/>); the margin is
/// min(lower, upper).
template <class T>
struct MarginSides {
    T lower, upper;
};

/// A set of linear constraints over named variables. Models persist::ViabilityModel.
template <class T>
class ConstraintSet {
public:
    using scalar_type = T;

    /// Parse `constraints` over `variables` (the internal-state dims, in x's order). Variable
    /// names must be unique identifiers ([A-Za-z_][A-Za-z0-9_]*, not "in"). Throws
    /// persist::ConfigError (with the caret diagnostic for a bad string).
    ConstraintSet(std::vector<std::string> variables, const std::vector<std::string>& constraints)
        : names_(std::move(variables)) {
        check_names();
        cons_.reserve(constraints.size());
        for (const auto& s : constraints) cons_.push_back(parse_constraint<T>(s, names_));
        build();
    }

    /// From already parsed (or programmatically built) constraints, each with `a` of size
    /// variables.size(); an empty `text` is replaced by the canonical form.
    static ConstraintSet from_parsed(std::vector<std::string> variables, std::vector<LinearConstraint<T>> constraints) {
        return ConstraintSet(std::move(variables), std::move(constraints), 0);
    }

private:
    ConstraintSet(std::vector<std::string> variables, std::vector<LinearConstraint<T>> constraints, int)
        : names_(std::move(variables)), cons_(std::move(constraints)) {
        check_names();
        for (std::size_t k = 0; k < cons_.size(); ++k) {
            const auto& c = cons_[k];
            if (c.a.size() != dim())
                throw ConfigError("ConstraintSet: constraints[" + std::to_string(k) + "] has " +
                                  std::to_string(c.a.size()) + " coefficients, expected " + std::to_string(dim()));
            if (!c.a.allFinite() || !std::isfinite(c.threshold) || !std::isfinite(c.lo) || !std::isfinite(c.hi))
                throw ConfigError("ConstraintSet: constraints[" + std::to_string(k) + "] has a non-finite value");
            if ((c.a.array() == T(0)).all())
                throw ConfigError("ConstraintSet: constraints[" + std::to_string(k) +
                                  "] does not depend on any variable");
            if (c.is_interval() && !(c.lo < c.hi))
                throw ConfigError("ConstraintSet: constraints[" + std::to_string(k) + "] has an empty interval [" +
                                  detail::shortest(c.lo) + ", " + detail::shortest(c.hi) + "]");
        }
        for (auto& c : cons_)
            if (c.text.empty()) c.text = render(c);
        build();
    }

public:

    // --- sizes and names -------------------------------------------------------------------
    Index dim() const { return static_cast<Index>(names_.size()); }
    Index num_constraints() const { return static_cast<Index>(cons_.size()); }
    const std::vector<std::string>& variable_names() const { return names_; }
    /// Index of a variable by name; ConfigError listing the known names otherwise.
    Index variable_index(std::string_view name) const {
        for (std::size_t j = 0; j < names_.size(); ++j)
            if (names_[j] == name) return static_cast<Index>(j);
        std::string known;
        for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError("ConstraintSet: unknown variable \"" + std::string(name) + "\" (known: " + known + ")");
    }

    // --- per constraint --------------------------------------------------------------------
    const LinearConstraint<T>& constraint(Index k) const { return cons_[check_k(k)]; }
    /// The string as written (canonical form for constraints made by `interpolate`).
    const std::string& text(Index k) const { return cons_[check_k(k)].text; }
    /// Normal form, e.g. "energy + 0.5*integrity >= 0.5"; parses back to the same constraint.
    std::string canonical(Index k) const { return render(cons_[check_k(k)]); }
    Sense sense(Index k) const { return cons_[check_k(k)].sense; }
    bool strict(Index k) const { return cons_[check_k(k)].strict(); }
    /// Indices of the variables constraint k involves (non-zero coefficients), ascending.
    std::vector<Index> variables(Index k) const {
        std::vector<Index> v;
        for (const auto& [j, a] : terms_[check_k(k)]) v.push_back(j);
        return v;
    }
    /// The margin rule of constraint k: margin > 0 if strict, margin >= 0 otherwise.
    bool satisfied(Index k, T margin) const { return cons_[check_k(k)].satisfied(margin); }

    /// Coefficient matrix (num_constraints x dim): row k is a of constraint k, so A x gives
    /// every e(x) at once (for callers that evaluate on another device).
    const Mat<T>& coefficients() const { return A_; }

    // --- margins -----------------------------------------------------------------------------
    /// m(k, b) = margin of constraint k at state x.col(b). x: dim x B, m: num_constraints x B.
    /// Never allocates. Only the non-zero coefficients of each constraint are read, so a state
    /// with inf/NaN in a variable a constraint does not involve does not poison its margin.
    void margins(MatCRef<T> x, MatRef<T> m) const {
        if (x.rows() != dim()) persist::detail::throw_shape("ConstraintSet::margins: x", dim(), x.cols(), x.rows(), x.cols());
        if (m.rows() != num_constraints() || m.cols() != x.cols())
            persist::detail::throw_shape("ConstraintSet::margins: m", num_constraints(), x.cols(), m.rows(), m.cols());
        for (Index b = 0; b < x.cols(); ++b)
            for (Index k = 0; k < num_constraints(); ++k) m(k, b) = margin_at(k, x.col(b).data());
    }
    /// Margin of constraint k at one state.
    T margin(Index k, VecCRef<T> x) const {
        check_x(x, "ConstraintSet::margin");
        check_k(k);
        return margin_at(k, x.data());
    }
    /// min over constraints of the margins at one state (+inf for an empty set). Use
    /// `satisfied(x)` for safety: a strict constraint at margin 0 is violated.
    T margin(VecCRef<T> x) const {
        check_x(x, "ConstraintSet::margin");
        T m = std::numeric_limits<T>::infinity();
        for (Index k = 0; k < num_constraints(); ++k) m = std::min(m, margin_at(k, x.data()));
        return m;
    }
    /// min over constraints for every column of x (dim x B) into out (1 x B).
    void min_margins(MatCRef<T> x, Eigen::Ref<RowVec<T>, 0, Eigen::InnerStride<>> out) const {
        if (x.rows() != dim()) persist::detail::throw_shape("ConstraintSet::min_margins: x", dim(), x.cols(), x.rows(), x.cols());
        if (out.cols() != x.cols()) persist::detail::throw_shape("ConstraintSet::min_margins: out", 1, x.cols(), 1, out.cols());
        for (Index b = 0; b < x.cols(); ++b) {
            T m = std::numeric_limits<T>::infinity();
            for (Index k = 0; k < num_constraints(); ++k) m = std::min(m, margin_at(k, x.col(b).data()));
            out(b) = m;
        }
    }
    /// Both sides of constraint k at one state (see MarginSides).
    MarginSides<T> sides(Index k, VecCRef<T> x) const {
        check_x(x, "ConstraintSet::sides");
        const auto& c = cons_[check_k(k)];
        const T e = expr_at(k, x.data());
        constexpr T inf = std::numeric_limits<T>::infinity();
        switch (c.sense) {
            case Sense::ge:
            case Sense::gt: return {e - c.threshold, inf};
            case Sense::le:
            case Sense::lt: return {inf, c.threshold - e};
            case Sense::interval: break;
        }
        return {e - c.lo, c.hi - e};
    }
    /// Every constraint satisfied (each by its own strictness rule).
    bool satisfied(VecCRef<T> x) const { return first_violated(x) < 0; }
    /// Index of the first violated constraint, -1 if none.
    Index first_violated(VecCRef<T> x) const {
        check_x(x, "ConstraintSet::first_violated");
        for (Index k = 0; k < num_constraints(); ++k)
            if (!cons_[static_cast<std::size_t>(k)].satisfied(margin_at(k, x.data()))) return k;
        return -1;
    }
    /// Index of the constraint with the smallest margin (the binding one), -1 for an empty set.
    Index binding(VecCRef<T> x) const {
        check_x(x, "ConstraintSet::binding");
        Index best = -1;
        T m = std::numeric_limits<T>::infinity();
        for (Index k = 0; k < num_constraints(); ++k) {
            const T v = margin_at(k, x.data());
            if (best < 0 || v < m) best = k, m = v;
        }
        return best;
    }

    // --- gradients -------------------------------------------------------------------------
    /// d margin_k / dx at x into g (size dim). Constant for >=, >, <=, <. For an interval,
    /// +a where the lower side binds, -a where the upper side binds, and 0 where they tie
    /// (the midpoint: 0 is a supergradient of the concave min there).
    void gradient(Index k, VecCRef<T> x, VecRef<T> g) const {
        check_x(x, "ConstraintSet::gradient");
        if (g.size() != dim()) persist::detail::throw_shape("ConstraintSet::gradient: g", dim(), 1, g.size(), 1);
        g.setZero();
        const T s = gradient_sign(static_cast<Index>(check_k(k)), x.data());
        if (s != T(0))
            for (const auto& [j, a] : terms_[static_cast<std::size_t>(k)]) g(j) = s * a;
    }
    /// Jacobian of all margins at x: J (num_constraints x dim), row k = gradient(k, x).
    void jacobian(VecCRef<T> x, MatRef<T> J) const {
        check_x(x, "ConstraintSet::jacobian");
        if (J.rows() != num_constraints() || J.cols() != dim())
            persist::detail::throw_shape("ConstraintSet::jacobian: J", num_constraints(), dim(), J.rows(), J.cols());
        J.setZero();
        for (Index k = 0; k < num_constraints(); ++k) {
            const T s = gradient_sign(k, x.data());
            if (s != T(0))
                for (const auto& [j, a] : terms_[static_cast<std::size_t>(k)]) J(k, j) = s * a;
        }
    }

    // --- polytope form -----------------------------------------------------------------------
    /// Rows of G x + h >= 0 (non-strict closure of the set): one row per one-sided constraint,
    /// two per interval (lower side, then upper side). For CBF / QP shields.
    Index num_half_spaces() const { return num_constraints() + num_intervals_; }
    /// Fills G (num_half_spaces x dim), h (num_half_spaces) and, if given, owner[r] = the
    /// constraint that row r comes from.
    void half_spaces(Mat<T>& G, Vec<T>& h, std::vector<Index>* owner = nullptr) const {
        G.setZero(num_half_spaces(), dim());
        h.resize(num_half_spaces());
        if (owner) owner->clear();
        Index r = 0;
        for (Index k = 0; k < num_constraints(); ++k) {
            const auto& c = cons_[static_cast<std::size_t>(k)];
            auto row = [&](T sign, T offset) {
                G.row(r) = sign * c.a.transpose();
                h(r) = offset;
                if (owner) owner->push_back(k);
                ++r;
            };
            switch (c.sense) {
                case Sense::ge:
                case Sense::gt: row(T(1), -c.threshold); break;
                case Sense::le:
                case Sense::lt: row(T(-1), c.threshold); break;
                case Sense::interval:
                    row(T(1), -c.lo);
                    row(T(-1), c.hi);
                    break;
            }
        }
    }

    // --- per variable ------------------------------------------------------------------------
    /// Bounds on variable j implied by the constraints involving only j (intersected).
    const VariableBounds<T>& bounds(Index j) const { return bounds_[check_j(j)]; }
    /// Every constraint with a non-zero coefficient on variable j (single- or multi-variable).
    const std::vector<Index>& constraints_involving(Index j) const { return involving_[check_j(j)]; }
    /// All single-variable constraints on j hold at x (evaluated through their margins, so
    /// this agrees with `satisfied(k, margin)` exactly). True when there are none.
    bool variable_satisfied(Index j, VecCRef<T> x) const {
        check_x(x, "ConstraintSet::variable_satisfied");
        for (Index k : bounds_[check_j(j)].constraints)
            if (!cons_[static_cast<std::size_t>(k)].satisfied(margin_at(k, x.data()))) return false;
        return true;
    }

    // --- curriculum --------------------------------------------------------------------------
    /// The set whose thresholds are lerp(wide, target, s) (s in [0, 1]: s = 0 gives `wide`,
    /// s = 1 gives `target` exactly): t for >=, >, <=, <, and both bounds of an interval. The
    /// two sets must have the same structure: the same variables, and constraint by constraint
    /// the same sense and the same coefficients (they may differ only in their constants).
    /// Texts of the result are canonical forms. ConfigError otherwise.
    static ConstraintSet interpolate(const ConstraintSet& wide, const ConstraintSet& target, T s) {
        ConstraintSet out = target;
        out.assign_interpolation(wide, target, s);
        return out;
    }
    /// In-place `interpolate`, so shields holding a reference see the new thresholds.
    void assign_interpolation(const ConstraintSet& wide, const ConstraintSet& target, T s) {
        if (!(s >= T(0) && s <= T(1)))
            throw ConfigError("ConstraintSet::interpolate: s must be in [0, 1], got " + detail::shortest(s));
        if (wide.names_ != target.names_ || wide.names_ != names_)
            throw ConfigError("ConstraintSet::interpolate: the sets have different variables");
        if (wide.num_constraints() != target.num_constraints() || target.num_constraints() != num_constraints())
            throw ConfigError("ConstraintSet::interpolate: the sets have different numbers of constraints (" +
                              std::to_string(wide.num_constraints()) + " and " +
                              std::to_string(target.num_constraints()) + ")");
        std::vector<LinearConstraint<T>> next = target.cons_;
        for (std::size_t k = 0; k < next.size(); ++k) {
            const auto& w = wide.cons_[k];
            const auto& t = target.cons_[k];
            if (w.sense != t.sense || w.a != t.a)
                throw ConfigError("ConstraintSet::interpolate: constraint " + std::to_string(k) + " differs in more "
                                  "than its constants: \"" + w.text + "\" vs \"" + t.text + "\" (normal forms \"" +
                                  render(w) + "\" and \"" + render(t) + "\")");
            auto& c = next[k];
            c.threshold = std::lerp(w.threshold, t.threshold, s);
            c.lo = std::lerp(w.lo, t.lo, s);
            c.hi = std::lerp(w.hi, t.hi, s);
            if (c.is_interval() && !(c.lo < c.hi))
                throw ConfigError("ConstraintSet::interpolate: constraint " + std::to_string(k) +
                                  " has an empty interval at s = " + detail::shortest(s));
            c.text = render(c);
        }
        cons_ = std::move(next);
        build();
    }

private:
    std::size_t check_k(Index k) const {
        if (k < 0 || k >= num_constraints())
            throw ConfigError("ConstraintSet: constraint index " + std::to_string(k) + " out of range [0, " +
                              std::to_string(num_constraints()) + ")");
        return static_cast<std::size_t>(k);
    }
    std::size_t check_j(Index j) const {
        if (j < 0 || j >= dim())
            throw ConfigError("ConstraintSet: variable index " + std::to_string(j) + " out of range [0, " +
                              std::to_string(dim()) + ")");
        return static_cast<std::size_t>(j);
    }
    void check_x(const VecCRef<T>& x, const char* where) const {
        if (x.size() != dim()) persist::detail::throw_shape(std::string(where) + ": x", dim(), 1, x.size(), 1);
    }
    void check_names() const {
        for (std::size_t j = 0; j < names_.size(); ++j) {
            if (!detail::valid_variable_name(names_[j]))
                throw ConfigError("ConstraintSet: variable name \"" + names_[j] + "\" (index " + std::to_string(j) +
                                  ") is not an identifier ([A-Za-z_][A-Za-z0-9_]*, not \"in\")");
            for (std::size_t i = 0; i < j; ++i)
                if (names_[i] == names_[j])
                    throw ConfigError("ConstraintSet: variable name \"" + names_[j] + "\" appears twice (indices " +
                                      std::to_string(i) + " and " + std::to_string(j) + ")");
        }
    }

    /// e(x) = sum over non-zero terms, in ascending variable order (same order everywhere, so
    /// batched and single-state margins agree bitwise).
    T expr_at(Index k, const T* x) const {
        T e = T(0);
        for (const auto& [j, a] : terms_[static_cast<std::size_t>(k)]) e += a * x[j];
        return e;
    }
    T margin_at(Index k, const T* x) const {
        const auto& c = cons_[static_cast<std::size_t>(k)];
        const T e = expr_at(k, x);
        switch (c.sense) {
            case Sense::ge:
            case Sense::gt: return e - c.threshold;
            case Sense::le:
            case Sense::lt: return c.threshold - e;
            case Sense::interval: break;
        }
        return std::min(e - c.lo, c.hi - e);
    }
    T gradient_sign(Index k, const T* x) const {
        const auto& c = cons_[static_cast<std::size_t>(k)];
        switch (c.sense) {
            case Sense::ge:
            case Sense::gt: return T(1);
            case Sense::le:
            case Sense::lt: return T(-1);
            case Sense::interval: break;
        }
        const T e = expr_at(k, x);
        const T lower = e - c.lo, upper = c.hi - e;
        return lower < upper ? T(1) : (upper < lower ? T(-1) : T(0));
    }

    std::string render(const LinearConstraint<T>& c) const {
        std::string s;
        for (Index j = 0; j < c.a.size(); ++j) {
            const T a = c.a(j);
            if (a == T(0)) continue;
            const T mag = a < 0 ? -a : a;
            if (s.empty()) s += a < 0 ? "-" : "";
            else s += a < 0 ? " - " : " + ";
            if (mag != T(1)) s += detail::shortest(mag) + "*";
            s += names_[static_cast<std::size_t>(j)];
        }
        if (c.is_interval()) return s + " in [" + detail::shortest(c.lo) + ", " + detail::shortest(c.hi) + "]";
        return s + " " + sense_symbol(c.sense) + " " + detail::shortest(c.threshold);
    }

    void build() {
        const Index m = num_constraints(), n = dim();
        A_.resize(m, n);
        terms_.assign(cons_.size(), {});
        involving_.assign(names_.size(), {});
        bounds_.assign(names_.size(), VariableBounds<T>{});
        num_intervals_ = 0;
        for (Index k = 0; k < m; ++k) {
            const auto& c = cons_[static_cast<std::size_t>(k)];
            A_.row(k) = c.a.transpose();
            if (c.is_interval()) ++num_intervals_;
            for (Index j = 0; j < n; ++j)
                if (c.a(j) != T(0)) {
                    terms_[static_cast<std::size_t>(k)].emplace_back(j, c.a(j));
                    involving_[static_cast<std::size_t>(j)].push_back(k);
                }
            const auto& t = terms_[static_cast<std::size_t>(k)];
            if (t.size() != 1) continue;
            const auto [j, a] = t.front();
            auto& b = bounds_[static_cast<std::size_t>(j)];
            b.constraints.push_back(k);
            auto lower = [&b](T v, bool strict) {
                if (v > b.lo) b.lo = v, b.lo_strict = strict;
                else if (v == b.lo) b.lo_strict = b.lo_strict || strict;
            };
            auto upper = [&b](T v, bool strict) {
                if (v < b.hi) b.hi = v, b.hi_strict = strict;
                else if (v == b.hi) b.hi_strict = b.hi_strict || strict;
            };
            switch (c.sense) {
                case Sense::ge:
                case Sense::gt:  // a x >= t
                    (a > 0) ? lower(c.threshold / a, c.strict()) : upper(c.threshold / a, c.strict());
                    break;
                case Sense::le:
                case Sense::lt:  // a x <= t
                    (a > 0) ? upper(c.threshold / a, c.strict()) : lower(c.threshold / a, c.strict());
                    break;
                case Sense::interval:
                    if (a > 0) lower(c.lo / a, false), upper(c.hi / a, false);
                    else lower(c.hi / a, false), upper(c.lo / a, false);
                    break;
            }
        }
    }

    std::vector<std::string> names_;
    std::vector<LinearConstraint<T>> cons_;
    Mat<T> A_;
    std::vector<std::vector<std::pair<Index, T>>> terms_;  ///< non-zero (j, a_j) per constraint
    std::vector<std::vector<Index>> involving_;
    std::vector<VariableBounds<T>> bounds_;
    Index num_intervals_ = 0;
};

}  // namespace persist::viability
