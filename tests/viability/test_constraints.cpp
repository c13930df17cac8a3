// Constraint expressions: every written form parses to the right margins, strictness, batched
// vs single evaluation, gradients vs finite differences, every error with its exact position,
// per-variable bounds, the polytope form and interpolation.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "persist/core/concepts.hpp"
#include "persist/core/random.hpp"
#include "persist/viability/constraints.hpp"

using persist::ConfigError;
using persist::Index;
using persist::Mat;
using persist::RowVec;
using persist::ShapeError;
using persist::Vec;
using persist::viability::ConstraintSet;
using persist::viability::parse_constraint;
using persist::viability::Sense;

static_assert(persist::ViabilityModel<ConstraintSet<double>>);
static_assert(persist::ViabilityModel<ConstraintSet<float>>);
static_assert(!persist::Stateful<ConstraintSet<double>>);

namespace {
const std::vector<std::string> kVars{"energy", "temp", "integrity"};

Vec<double> v3(double e, double t, double i) {
    Vec<double> v(3);
    v << e, t, i;
    return v;
}

/// The error message of parsing `text` (or "no error").
std::string parse_error(const std::string& text, const std::vector<std::string>& vars = kVars) {
    try {
        (void)parse_constraint<double>(text, vars);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

/// Random states spread around the thresholds used below.
std::vector<Vec<double>> sample_states(int n, std::uint64_t seed = 3) {
    persist::Rng rng(seed);
    std::vector<Vec<double>> xs;
    for (int i = 0; i < n; ++i) xs.push_back(v3(rng.uniform(-1.0, 2.0), rng.uniform(-1.0, 2.0), rng.uniform(-1.0, 2.0)));
    return xs;
}
}  // namespace

TEST_CASE("constraint forms parse to the right margins", "[viability][constraints]") {
    struct Case {
        std::string text;
        double (*margin)(double e, double t, double i);
        bool strict;
    };
    const std::vector<Case> cases{
        {"energy >= 0.2", [](double e, double, double) { return e - 0.2; }, false},
        {"temp in [0.3, 0.7]", [](double, double t, double) { return std::min(t - 0.3, 0.7 - t); }, false},
        {"integrity >= 0.6", [](double, double, double i) { return i - 0.6; }, false},
        {"energy <= 0.9", [](double e, double, double) { return 0.9 - e; }, false},
        {"energy < 0.9", [](double e, double, double) { return 0.9 - e; }, true},
        {"energy > 0.1", [](double e, double, double) { return e - 0.1; }, true},
        {"energy + 0.5*integrity >= 0.5", [](double e, double, double i) { return e + 0.5 * i - 0.5; }, false},
        {"2*temp - energy <= 1", [](double e, double t, double) { return 1 - (2 * t - e); }, false},
        {"-energy > -0.9", [](double e, double, double) { return 0.9 - e; }, true},
        {"0.2 <= energy", [](double e, double, double) { return e - 0.2; }, false},
        {"0.2 < energy", [](double e, double, double) { return e - 0.2; }, true},
        {"1 >= temp", [](double, double t, double) { return 1 - t; }, false},
        {"2.5e-1 <= integrity*1E0", [](double, double, double i) { return i - 0.25; }, false},
        {"  energy>=.2  ", [](double e, double, double) { return e - 0.2; }, false},
        {"\tenergy\n>=\t0.2", [](double e, double, double) { return e - 0.2; }, false},
        {"energy - temp >= 0", [](double e, double t, double) { return e - t; }, false},
        {"energy >= temp + 0.1", [](double e, double t, double) { return e - t - 0.1; }, false},
        {"(energy + temp)/2 >= 0.4", [](double e, double t, double) { return (e + t) / 2 - 0.4; }, false},
        {"-(temp - 1) * 3 >= 0", [](double, double t, double) { return -(t - 1) * 3; }, false},
        {"energy + 0.1 in [0.3, 0.7]", [](double e, double, double) { return std::min(e + 0.1 - 0.3, 0.7 - e - 0.1); }, false},
        {"-temp in [-0.7, -0.3]", [](double, double t, double) { return std::min(t - 0.3, 0.7 - t); }, false},
        {"temp in [-1e-1, +5e-1]", [](double, double t, double) { return std::min(t + 0.1, 0.5 - t); }, false},
        {"+energy >= -0.5", [](double e, double, double) { return e + 0.5; }, false},
        {"energy*2 + temp*-1 <= 0.5", [](double e, double t, double) { return 0.5 - 2 * e + t; }, false},
    };
    const auto xs = sample_states(50);
    for (const auto& c : cases) {
        INFO(c.text);
        const ConstraintSet<double> set(kVars, std::vector<std::string>{c.text});
        REQUIRE(set.num_constraints() == 1);
        CHECK(set.strict(0) == c.strict);
        CHECK(set.text(0) == c.text);
        for (const auto& x : xs) CHECK(set.margin(0, x) == Approx(c.margin(x(0), x(1), x(2))).margin(1e-12));
        // the canonical form parses back to identical margins
        const ConstraintSet<double> again(kVars, std::vector<std::string>{set.canonical(0)});
        for (const auto& x : xs) CHECK(again.margin(0, x) == set.margin(0, x));
    }
}

TEST_CASE("canonical forms", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"0.2 <= energy", "-energy > -0.9", "energy + 0.5*integrity >= 0.5",
                                          "2*temp - energy <= 1", "-temp in [-0.7, -0.3]", "temp in [0.3, 0.7]"});
    CHECK(s.canonical(0) == "energy >= 0.2");
    CHECK(s.canonical(1) == "energy < 0.9");
    CHECK(s.canonical(2) == "energy + 0.5*integrity >= 0.5");
    CHECK(s.canonical(3) == "-energy + 2*temp <= 1");
    CHECK(s.canonical(4) == "temp in [0.3, 0.7]");
    CHECK(s.canonical(5) == "temp in [0.3, 0.7]");
    CHECK(s.sense(0) == Sense::ge);
    CHECK(s.sense(1) == Sense::lt);
    CHECK(s.sense(4) == Sense::interval);
}

TEST_CASE("strictness: margin 0 is safe for >=, <=, in and violated for >, <", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.25", "energy > 0.25", "temp <= 0.5", "temp < 0.5",
                                          "integrity in [0.25, 0.75]"});
    const Vec<double> x = v3(0.25, 0.5, 0.75);  // exactly on every boundary
    for (Index k = 0; k < s.num_constraints(); ++k) CHECK(s.margin(k, x) == 0.0);
    CHECK(s.satisfied(0, 0.0));
    CHECK_FALSE(s.satisfied(1, 0.0));
    CHECK(s.satisfied(2, 0.0));
    CHECK_FALSE(s.satisfied(3, 0.0));
    CHECK(s.satisfied(4, 0.0));
    CHECK_FALSE(s.satisfied(0, std::nan("")));
    CHECK(s.first_violated(x) == 1);
    CHECK_FALSE(s.satisfied(x));
    CHECK(s.margin(x) == 0.0);
    // the lower side of the interval is exact too
    CHECK(s.margin(4, v3(0, 0, 0.25)) == 0.0);
    const ConstraintSet<double> nonstrict(kVars, {"energy >= 0.25", "temp <= 0.5", "integrity in [0.25, 0.75]"});
    CHECK(nonstrict.satisfied(x));
    CHECK(nonstrict.first_violated(x) == -1);
    CHECK(nonstrict.first_violated(v3(0.2, 0.5, 0.75)) == 0);
    CHECK(nonstrict.first_violated(v3(0.3, 0.5, 0.8)) == 2);
    CHECK(nonstrict.binding(v3(0.3, 0.1, 0.5)) == 0);
    CHECK(nonstrict.binding(v3(0.9, 0.1, 0.3)) == 2);
}

TEST_CASE("batched margins equal per-column margins bitwise", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6",
                                          "energy + 0.5*integrity >= 0.5", "2*temp - energy <= 1",
                                          "-energy > -0.9"});
    const auto xs = sample_states(64, 11);
    Mat<double> X(3, 64);
    for (Index b = 0; b < 64; ++b) X.col(b) = xs[static_cast<std::size_t>(b)];
    Mat<double> M(s.num_constraints(), 64);
    s.margins(X, M);
    RowVec<double> mins(64);
    s.min_margins(X, mins);
    for (Index b = 0; b < 64; ++b) {
        for (Index k = 0; k < s.num_constraints(); ++k) CHECK(M(k, b) == s.margin(k, X.col(b)));
        CHECK(mins(b) == s.margin(X.col(b)));
        CHECK(mins(b) == M.col(b).minCoeff());
        bool all = true;
        for (Index k = 0; k < s.num_constraints(); ++k) all = all && s.satisfied(k, M(k, b));
        CHECK(all == s.satisfied(X.col(b)));
    }
    // a block of a larger matrix (outer stride != rows) works without copies
    Mat<double> big = Mat<double>::Zero(10, 64);
    s.margins(X, big.topRows(s.num_constraints()));
    CHECK(big.topRows(s.num_constraints()) == M);
    // the coefficient matrix reproduces every linear part
    CHECK(s.coefficients().rows() == 6);
    CHECK(s.coefficients().row(3) == Eigen::RowVector3d(1, 0, 0.5));
    // shape errors
    Mat<double> wrong(5, 64);
    CHECK_THROWS_AS(s.margins(X, wrong), ShapeError);
    CHECK_THROWS_AS(s.margins(Mat<double>(2, 64), M), ShapeError);
    // float agrees to float precision
    const ConstraintSet<float> sf(kVars, {"energy + 0.5*integrity >= 0.5", "temp in [0.3, 0.7]"});
    Mat<float> Mf(2, 64);
    sf.margins(X.cast<float>(), Mf);
    for (Index b = 0; b < 64; ++b) {
        CHECK(Mf(0, b) == Approx(M(3, b)).margin(1e-6));
        CHECK(Mf(1, b) == Approx(M(1, b)).margin(1e-6));
    }
}

TEST_CASE("an unrelated non-finite variable does not poison a margin", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]"});
    const Vec<double> x = v3(0.5, 0.5, std::numeric_limits<double>::infinity());
    CHECK(s.margin(0, x) == Approx(0.3));
    CHECK(s.margin(1, x) == Approx(0.2));
    CHECK(s.satisfied(x));
}

TEST_CASE("margin gradients match central differences", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]", "energy + 0.5*integrity >= 0.5",
                                          "2*temp - energy <= 1", "-energy > -0.9", "(temp - integrity)/4 in [-1, 2]"});
    const auto xs = sample_states(40, 5);
    Mat<double> J(s.num_constraints(), 3);
    for (const auto& x : xs) {
        s.jacobian(x, J);
        for (Index k = 0; k < s.num_constraints(); ++k) {
            Vec<double> g(3);
            s.gradient(k, x, g);
            CHECK((J.row(k).transpose() - g).norm() == 0.0);
            for (Index j = 0; j < 3; ++j) {
                const double h = 1e-7;
                Vec<double> xp = x, xm = x;
                xp(j) += h;
                xm(j) -= h;
                const double fd = (s.margin(k, xp) - s.margin(k, xm)) / (2 * h);
                INFO("constraint " << s.text(k) << " var " << j);
                CHECK(g(j) == Approx(fd).margin(1e-6));
            }
        }
    }
    // the interval's supergradient at its midpoint (where both sides tie exactly) is 0
    const ConstraintSet<double> iv(kVars, {"temp in [0.25, 0.75]"});
    Vec<double> g(3);
    iv.gradient(0, v3(0, 0.5, 0), g);
    CHECK(g.isZero());
    iv.gradient(0, v3(0, 0.4, 0), g);
    CHECK(g == v3(0, 1, 0));
    iv.gradient(0, v3(0, 0.6, 0), g);
    CHECK(g == v3(0, -1, 0));
}

TEST_CASE("sides and half-space form", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]", "2*temp - energy <= 1"});
    const Vec<double> x = v3(0.5, 0.4, 0.1);
    auto sd = s.sides(1, x);
    CHECK(sd.lower == Approx(0.1));
    CHECK(sd.upper == Approx(0.3));
    sd = s.sides(0, x);
    CHECK(sd.lower == Approx(0.3));
    CHECK(std::isinf(sd.upper));
    sd = s.sides(2, x);
    CHECK(std::isinf(sd.lower));
    CHECK(sd.upper == Approx(0.7));
    Mat<double> G;
    Vec<double> h;
    std::vector<Index> owner;
    s.half_spaces(G, h, &owner);
    REQUIRE(s.num_half_spaces() == 4);
    CHECK(owner == std::vector<Index>{0, 1, 1, 2});
    const auto xs = sample_states(30, 9);
    for (const auto& y : xs) {
        const Vec<double> r = G * y + h;
        CHECK(r(0) == Approx(s.margin(0, y)).margin(1e-12));
        CHECK(std::min(r(1), r(2)) == Approx(s.margin(1, y)).margin(1e-12));
        CHECK(r(3) == Approx(s.margin(2, y)).margin(1e-12));
    }
}

TEST_CASE("per-variable bounds and involved variables", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]", "integrity >= 0.6",
                                          "energy + 0.5*integrity >= 0.5", "energy < 0.9", "0.5 > temp",
                                          "2*energy >= 0.1"});
    CHECK(s.variables(0) == std::vector<Index>{0});
    CHECK(s.variables(3) == std::vector<Index>{0, 2});
    CHECK(s.constraints_involving(0) == std::vector<Index>{0, 3, 4, 6});
    CHECK(s.constraints_involving(2) == std::vector<Index>{2, 3});
    const auto& e = s.bounds(0);
    CHECK(e.lo == 0.2);
    CHECK_FALSE(e.lo_strict);
    CHECK(e.hi == 0.9);
    CHECK(e.hi_strict);
    CHECK(e.constraints == std::vector<Index>{0, 4, 6});
    const auto& t = s.bounds(1);
    CHECK(t.lo == 0.3);
    CHECK(t.hi == 0.5);
    CHECK(t.hi_strict);
    CHECK(t.contains(0.3));
    CHECK_FALSE(t.contains(0.5));
    const auto& i = s.bounds(2);
    CHECK(i.lo == 0.6);
    CHECK_FALSE(i.bounded_above());
    CHECK(s.variable_satisfied(0, v3(0.2, 9, 9)));
    CHECK_FALSE(s.variable_satisfied(0, v3(0.9, 0.4, 0.7)));
    CHECK_FALSE(s.variable_satisfied(1, v3(0.5, 0.5, 0.7)));
    CHECK(s.variable_satisfied(2, v3(-5, -5, 0.6)));  // multi-variable constraint 3 not counted
    CHECK(s.variable_index("temp") == 1);
    CHECK_THROWS_AS(s.variable_index("hunger"), ConfigError);
}

TEST_CASE("interpolate lerps thresholds between a wide and a target set", "[viability][constraints]") {
    // binary-exact thresholds, so the lerped values and their texts are exact
    const ConstraintSet<double> wide(kVars, {"energy >= 0.0", "temp in [0.25, 0.875]", "energy + 0.5*integrity >= 0.125"});
    const ConstraintSet<double> target(kVars, {"energy >= 0.25", "temp in [0.375, 0.625]", "energy + 0.5*integrity >= 0.5"});
    const auto xs = sample_states(20, 13);
    const auto s0 = ConstraintSet<double>::interpolate(wide, target, 0.0);
    const auto s1 = ConstraintSet<double>::interpolate(wide, target, 1.0);
    for (const auto& x : xs)
        for (Index k = 0; k < 3; ++k) {
            CHECK(s0.margin(k, x) == wide.margin(k, x));
            CHECK(s1.margin(k, x) == target.margin(k, x));
        }
    const auto half = ConstraintSet<double>::interpolate(wide, target, 0.5);
    CHECK(half.constraint(0).threshold == 0.125);
    CHECK(half.constraint(1).lo == 0.3125);
    CHECK(half.constraint(1).hi == 0.75);
    CHECK(half.text(0) == "energy >= 0.125");
    CHECK(half.text(1) == "temp in [0.3125, 0.75]");
    CHECK(half.text(2) == "energy + 0.5*integrity >= 0.3125");
    CHECK(half.bounds(0).lo == 0.125);
    CHECK(half.bounds(1).hi == 0.75);
    // monotone tightening: margins shrink as s grows
    for (const auto& x : xs) {
        double prev = std::numeric_limits<double>::infinity();
        for (double s = 0; s <= 1.0; s += 0.125) {
            const double m = ConstraintSet<double>::interpolate(wide, target, s).margin(x);
            CHECK(m <= prev);
            prev = m;
        }
    }
    // in place
    ConstraintSet<double> live = wide;
    live.assign_interpolation(wide, target, 0.25);
    CHECK(live.constraint(0).threshold == 0.0625);
    // structure mismatches
    const ConstraintSet<double> other_coef(kVars, {"energy >= 0.2", "temp in [0.3, 0.7]", "energy + integrity >= 0.5"});
    CHECK_THROWS_WITH(ConstraintSet<double>::interpolate(wide, other_coef, 0.5),
                      Catch::Contains("constraint 2 differs in more than its constants"));
    const ConstraintSet<double> other_sense(kVars, {"energy > 0.2", "temp in [0.3, 0.7]", "energy + 0.5*integrity >= 0.5"});
    CHECK_THROWS_AS(ConstraintSet<double>::interpolate(wide, other_sense, 0.5), ConfigError);
    const ConstraintSet<double> fewer(kVars, {"energy >= 0.2"});
    CHECK_THROWS_AS(ConstraintSet<double>::interpolate(wide, fewer, 0.5), ConfigError);
    CHECK_THROWS_AS(ConstraintSet<double>::interpolate(wide, target, 1.5), ConfigError);
    CHECK_THROWS_AS(ConstraintSet<double>::interpolate(wide, target, std::nan("")), ConfigError);
}

TEST_CASE("constraint errors quote the string and point at the column", "[viability][constraints]") {
    // the example of the spec, verbatim
    CHECK(parse_error("energy >= 0.2x") ==
          "constraint \"energy >= 0.2x\": unexpected 'x' at column 14\n"
          "  energy >= 0.2x\n"
          "               ^");
    // unknown variable: the whole name is underlined
    CHECK(parse_error("enrgy >= 0.2") ==
          "constraint \"enrgy >= 0.2\": unknown variable 'enrgy' at column 1 "
          "(known variables: energy, temp, integrity)\n"
          "  enrgy >= 0.2\n"
          "  ^~~~~");
    CHECK(parse_error("energy + hunger >= 1") ==
          "constraint \"energy + hunger >= 1\": unknown variable 'hunger' at column 10 "
          "(known variables: energy, temp, integrity)\n"
          "  energy + hunger >= 1\n"
          "           ^~~~~~");
    // reversed and empty intervals: the interval is underlined
    CHECK(parse_error("temp in [0.7, 0.3]") ==
          "constraint \"temp in [0.7, 0.3]\": reversed interval [0.7, 0.3] at column 9 "
          "(need lower bound < upper bound)\n"
          "  temp in [0.7, 0.3]\n"
          "          ^~~~~~~~~~");
    CHECK(parse_error("temp in [0.5,0.5]") ==
          "constraint \"temp in [0.5,0.5]\": empty interval [0.5, 0.5] at column 9 "
          "(need lower bound < upper bound)\n"
          "  temp in [0.5,0.5]\n"
          "          ^~~~~~~~~");
    // missing comparator
    CHECK(parse_error("energy 0.2") ==
          "constraint \"energy 0.2\": expected an operator or a comparator ('>=', '<=', '>', '<' or 'in'), "
          "found '0.2' at column 8\n"
          "  energy 0.2\n"
          "         ^~~");
    CHECK(parse_error("energy") ==
          "constraint \"energy\": expected an operator or a comparator ('>=', '<=', '>', '<' or 'in'), "
          "found end of constraint at column 7\n"
          "  energy\n"
          "        ^");
    // no variable (also when the coefficients cancel): the constraint is underlined
    CHECK(parse_error("1 >= 0") ==
          "constraint \"1 >= 0\": constraint does not depend on any variable at column 1\n"
          "  1 >= 0\n"
          "  ^~~~~~");
    CHECK(parse_error(" energy - energy >= 0 ") ==
          "constraint \" energy - energy >= 0 \": constraint does not depend on any variable at column 2\n"
          "   energy - energy >= 0 \n"
          "   ^~~~~~~~~~~~~~~~~~~~");
    // missing right-hand side
    CHECK(parse_error("energy >= ") ==
          "constraint \"energy >= \": expected a number or a variable, found end of constraint at column 11\n"
          "  energy >= \n"
          "            ^");
    // empty
    CHECK(parse_error("   ") ==
          "constraint \"   \": empty constraint at column 4\n"
          "     \n"
          "     ^");
    // tabs are kept in the caret line so it lines up
    CHECK(parse_error("\tenergy >= 0.2x") ==
          "constraint \"\tenergy >= 0.2x\": unexpected 'x' at column 15\n"
          "  \tenergy >= 0.2x\n"
          "  \t             ^");
}

TEST_CASE("every other constraint error kind", "[viability][constraints]") {
    auto column = [](const std::string& text) {
        const std::string m = parse_error(text);
        const auto p = m.find(" at column ");
        REQUIRE(p != std::string::npos);
        return std::stoi(m.substr(p + 11));
    };
    auto has = [](const std::string& text, const std::string& what) {
        const std::string m = parse_error(text);
        INFO(m);
        return m.find(what) != std::string::npos;
    };
    CHECK(has("energy == 0.2", "'==' is not a comparator"));
    CHECK(column("energy == 0.2") == 8);
    CHECK(has("energy = 0.2", "'=' is not a comparator"));
    CHECK(has("energy => 0.2", "'=>' is not a comparator"));
    CHECK(has("energy != 0.2", "'!=' is not a comparator"));
    CHECK(has("energy >= 0.2 # comment", "unexpected character '#'"));
    CHECK(column("energy >= 0.2 # comment") == 15);
    CHECK(has("energy * temp >= 0.1", "nonlinear term"));
    CHECK(column("energy * temp >= 0.1") == 8);
    CHECK(has("energy / temp >= 0.1", "division by an expression that depends on a variable"));
    CHECK(has("energy / 0 >= 0.1", "division by zero"));
    CHECK(column("energy / 0 >= 0.1") == 8);
    CHECK(has("temp in [energy, 0.7]", "interval bound must be a constant"));
    CHECK(column("temp in [energy, 0.7]") == 10);
    CHECK(has("temp in (0.3, 0.7)", "expected '[' after 'in', found '('"));
    CHECK(has("temp in [0.3; 0.7]", "unexpected character ';'"));
    CHECK(has("temp in [0.3 0.7]", "expected ',' in interval, found '0.7'"));
    CHECK(column("temp in [0.3 0.7]") == 14);
    CHECK(has("temp in [0.3, 0.7", "expected ']' to close the interval, found end of constraint"));
    CHECK(has("temp in [0.3, 0.7] x", "unexpected 'x'"));
    CHECK(has("0.2 <= energy <= 0.8", "unexpected '<='"));
    CHECK(has("0.2 <= energy <= 0.8", "write a range as 'x in [lo, hi]'"));
    CHECK(column("0.2 <= energy <= 0.8") == 15);
    CHECK(has("(energy >= 0.2", "expected ')' to match the '(' at column 1, found '>='"));
    CHECK(has("energy >= 1e999", "number '1e999' out of range"));
    CHECK(has("energy >= 2e", "unexpected 'e'"));
    CHECK(column("energy >= 2e") == 12);
    CHECK(has("energy >= 0.2.3", "unexpected '.3'"));
    CHECK(has(">= 0.2", "expected a number or a variable, found '>='"));
    CHECK(has("energy >= -", "expected a number or a variable, found end of constraint"));
    CHECK(has("energy \xc3\xa9 >= 0", "unexpected character '\\xc3'"));
    // float precision: a threshold finite in double but not in float
    CHECK_THROWS_WITH(parse_constraint<float>("energy >= 1e300", kVars), Catch::Contains("not finite in this precision"));
    // every error is a ConfigError (a persist::Error)
    CHECK_THROWS_AS(ConstraintSet<double>(kVars, {"energy >= 0.2", "temp >= "}), persist::Error);
}

TEST_CASE("variable names are validated", "[viability][constraints]") {
    CHECK_THROWS_WITH(ConstraintSet<double>({"energy", "energy"}, std::vector<std::string>{}),
                      Catch::Contains("appears twice"));
    CHECK_THROWS_WITH(ConstraintSet<double>({"in"}, std::vector<std::string>{}), Catch::Contains("not an identifier"));
    CHECK_THROWS_WITH(ConstraintSet<double>({"2x"}, std::vector<std::string>{}), Catch::Contains("not an identifier"));
    CHECK_THROWS_AS(ConstraintSet<double>({"a b"}, std::vector<std::string>{}), ConfigError);
    // names with digits and underscores work
    const ConstraintSet<double> s({"x_1", "_y2"}, {"x_1 - _y2 >= 0"});
    Vec<double> x(2);
    x << 1, 0.25;
    CHECK(s.margin(x) == 0.75);
}

TEST_CASE("an empty constraint set is always satisfied", "[viability][constraints]") {
    const ConstraintSet<double> s(kVars, std::vector<std::string>{});
    CHECK(s.num_constraints() == 0);
    CHECK(std::isinf(s.margin(v3(0, 0, 0))));
    CHECK(s.satisfied(v3(-1, -1, -1)));
    CHECK(s.first_violated(v3(0, 0, 0)) == -1);
    CHECK(s.binding(v3(0, 0, 0)) == -1);
    Mat<double> M(0, 4);
    s.margins(Mat<double>::Zero(3, 4), M);
}

TEST_CASE("constraint sets from parsed constraints", "[viability][constraints]") {
    auto c = parse_constraint<double>("energy >= 0.2", kVars);
    c.text.clear();
    const auto s = ConstraintSet<double>::from_parsed(kVars, {c});
    CHECK(s.text(0) == "energy >= 0.2");
    auto bad = c;
    bad.a.setZero();
    CHECK_THROWS_WITH(ConstraintSet<double>::from_parsed(kVars, std::vector<persist::viability::LinearConstraint<double>>{bad}),
                      Catch::Contains("does not depend on any variable"));
    auto short_a = c;
    short_a.a.resize(2);
    CHECK_THROWS_AS(ConstraintSet<double>::from_parsed(kVars, std::vector<persist::viability::LinearConstraint<double>>{short_a}),
                    ConfigError);
}
