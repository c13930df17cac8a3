// Contracts every optimizer keeps: the Optimizer concept, reset() = fresh, visit_state exposes
// all state (checkpoint round trip), no allocation in step(), and validated hyperparameters.
#include "optim/test_common.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "persist/optim/optim.hpp"

// Count every operator new in the process, so step() is checked for non-Eigen allocations too
// (Eigen's own allocations are caught by EIGEN_RUNTIME_NO_MALLOC, see test_common.hpp).
namespace {
std::atomic<long> g_news{0};
}
// noinline: GCC 12 otherwise pairs the inlined malloc with the inlined free across call sites
// and warns (-Wmismatched-new-delete) about this textbook replacement.
[[gnu::noinline]] void* operator new(std::size_t n) {
    ++g_news;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace persist;
using namespace persist::optim;

// ---- The concepts, positive and negative --------------------------------------------------
// Every optimizer models the core contract persist::Optimizer<O, T> (core/concepts.hpp) ...
static_assert(persist::Optimizer<SGD<double>, double> && persist::Optimizer<SGD<float>, float>);
static_assert(persist::Optimizer<Adam<double>, double> && persist::Optimizer<AdamW<float>, float>);
static_assert(persist::Optimizer<RAdam<double>, double> && persist::Optimizer<RMSprop<float>, float>);
static_assert(persist::Optimizer<Lion<double>, double> && persist::Optimizer<Adafactor<float>, float>);
static_assert(persist::Optimizer<Lookahead<Adam<double>>, double>);
static_assert(!persist::Optimizer<SGD<double>, float>, "a double optimizer does not take float vectors");
// ... and the optim refinement that wrappers and schedules need (scalar_type, size, lr).
static_assert(OptimizerWithLr<SGD<float>> && OptimizerWithLr<SGD<double>>);
static_assert(OptimizerWithLr<Adam<double>> && OptimizerWithLr<AdamW<float>>);
static_assert(OptimizerWithLr<RAdam<double>> && OptimizerWithLr<RMSprop<float>>);
static_assert(OptimizerWithLr<Lion<double>> && OptimizerWithLr<Adafactor<float>>);
static_assert(OptimizerWithLr<NullOptimizer<double>>);
static_assert(OptimizerWithLr<Lookahead<RAdam<float>>> && OptimizerWithLr<LookaheadRAdam<double>>);
static_assert(OptimizerWithLr<Lookahead<Lookahead<SGD<double>>>>);
// SAM needs a gradient closure, so it is deliberately neither (but it is checkpointable).
static_assert(!OptimizerWithLr<SAM<Adam<double>>>);
static_assert(!persist::Optimizer<SAM<Adam<double>>, double>);
static_assert(persist::Stateful<SAM<Adam<double>>>);
static_assert(!OptimizerWithLr<int>);
static_assert(!OptimizerWithLr<Vec<double>>);
static_assert(!OptimizerWithLr<CosineWarmRestarts<double>>);
static_assert(GradientClosure<void (*)(VecCRef<double>&, VecRef<double>&), double>);
static_assert(!GradientClosure<VecCRef<double>, double>, "an Eigen object is not a closure");
static_assert(!GradientClosure<void (*)(VecCRef<double>&), double>);
static_assert(LrSchedule<ConstantLr<float>> && LrSchedule<LinearWarmup<double>>);
static_assert(LrSchedule<CosineWarmRestarts<double>> && LrSchedule<WarmupCosine<float>>);
static_assert(LrSchedule<SequentialLr<ConstantLr<double>, LinearWarmup<double>>>);
static_assert(!LrSchedule<SGD<double>>);

namespace {

constexpr Index kN = 12;

/// Expect exception E whose what() contains every one of `parts`.
template <class E, class F>
void expect_throw(F&& f, const std::vector<std::string>& parts) {
    try {
        f();
    } catch (const E& e) {
        const std::string msg = e.what();
        for (const auto& part : parts) CHECK_THAT(msg, Catch::Matchers::Contains(part));
        return;
    }
    FAIL_CHECK("no exception thrown; expected one containing " << parts.front());
}

/// Expect ConfigError whose message names the optimizer, the parameter and the bad value.
void expect_config_error(const std::function<void()>& f, const std::string& who, const std::string& param,
                         const std::string& value) {
    INFO(who << "." << param << " = " << value);
    expect_throw<ConfigError>(f, {who + ":", param, value});
}

// One factory per optimizer under test; every hyperparameter that creates state is switched on.
template <class T>
struct Makers {
    static SGD<T> sgd() { return SGD<T>(kN, {.lr = T(0.01), .momentum = T(0.9), .weight_decay = T(0.01), .nesterov = true}); }
    static Adam<T> adam() { return Adam<T>(kN, {.lr = T(0.01), .amsgrad = true}); }
    static AdamW<T> adamw() { return AdamW<T>(kN, {.lr = T(0.01), .amsgrad = true}); }
    static RAdam<T> radam() { return RAdam<T>(kN, {.lr = T(0.01), .weight_decay = T(0.01), .decoupled_weight_decay = true}); }
    static RMSprop<T> rmsprop() { return RMSprop<T>(kN, {.lr = T(0.001), .momentum = T(0.5), .centered = true}); }
    static Lion<T> lion() { return Lion<T>(kN, {.lr = T(0.001), .weight_decay = T(0.1)}); }
    static Adafactor<T> adafactor() { return Adafactor<T>(kN, {{2, 3, 3}}, {.beta1 = T(0.9)}); }
    static Lookahead<Adam<T>> lookahead() { return Lookahead<Adam<T>>(adam(), {.k = 3}); }
    static Lookahead<Adafactor<T>> lookahead_adafactor() { return Lookahead<Adafactor<T>>(adafactor()); }
};

template <class T, class Opt>
Vec<T> trajectory(Opt& opt, Vec<T> p, const std::vector<Vec<T>>& grads, std::size_t from, std::size_t to) {
    for (std::size_t t = from; t < to; ++t) opt.step(p, grads[t]);
    return p;
}

// Copy state between two optimizers through visit_state only (what a checkpoint does).
template <class Opt>
void copy_state(Opt& from, Opt& to) {
    std::vector<TensorRef> src, dst;
    from.visit_state([&](TensorRef t) { src.push_back(std::move(t)); });
    to.visit_state([&](TensorRef t) { dst.push_back(std::move(t)); });
    REQUIRE(src.size() == dst.size());
    for (std::size_t i = 0; i < src.size(); ++i) {
        REQUIRE(src[i].name == dst[i].name);
        REQUIRE(src[i].bytes() == dst[i].bytes());
        std::memcpy(dst[i].data, src[i].data, src[i].bytes());
    }
}

template <class T, class Make>
void check_contracts(Make make) {
    auto grads = persist_test::gradient_sequence<T>(kN, 80, 99);
    const Vec<T> p0 = Vec<T>::LinSpaced(kN, T(-1), T(1.5));

    SECTION("reset() restores freshly constructed behaviour") {
        auto fresh = make();
        const Vec<T> expect = trajectory<T>(fresh, p0, grads, 0, 40);
        auto used = make();
        trajectory<T>(used, p0, grads, 40, 80);  // build up state, then reset
        used.reset();
        const Vec<T> got = trajectory<T>(used, p0, grads, 0, 40);
        CHECK(got == expect);  // bitwise
    }
    SECTION("visit_state exposes all state: a checkpoint round trip continues bitwise") {
        auto a = make();
        const Vec<T> mid = trajectory<T>(a, p0, grads, 0, 37);
        auto b = make();
        copy_state(a, b);
        CHECK(trajectory<T>(a, mid, grads, 37, 80) == trajectory<T>(b, mid, grads, 37, 80));
    }
    SECTION("visit_state names are unique and every tensor is non-empty") {
        auto a = make();
        std::set<std::string> names;
        std::size_t count = 0;
        a.visit_state([&](const TensorRef& t) {
            ++count;
            names.insert(t.name);
            CHECK(t.numel() > 0);
            CHECK(t.data != nullptr);
        });
        CHECK(names.size() == count);
        CHECK(names.count("step") + names.count("inner.step") >= 1);
    }
    SECTION("step() allocates nothing") {
        auto a = make();
        Vec<T> p = p0;
        a.step(p, grads[0]);
        const long before = g_news.load();
        {
            persist_test::NoEigenMalloc guard;
            for (std::size_t t = 1; t < 20; ++t) a.step(p, grads[t]);
        }
        CHECK(g_news.load() == before);
    }
    SECTION("size mismatches throw ShapeError naming the argument") {
        auto a = make();
        Vec<T> p = p0, short_p(kN - 1), long_g(kN + 2);
        short_p.setZero();
        long_g.setZero();
        expect_throw<ShapeError>([&] { a.step(short_p, grads[0]); }, {"::step", "params", "12", "11"});
        expect_throw<ShapeError>([&] { a.step(p, long_g); }, {"::step", "grads", "12", "14"});
    }
    SECTION("set_lr validates and round-trips") {
        auto a = make();
        a.set_lr(T(0.125));
        CHECK(a.lr() == T(0.125));
        expect_throw<ConfigError>([&] { a.set_lr(T(-1)); }, {"lr", "-1"});
        CHECK_THROWS_AS(a.set_lr(std::numeric_limits<T>::quiet_NaN()), ConfigError);
        CHECK(a.lr() == T(0.125));
    }
}

}  // namespace

TEMPLATE_TEST_CASE("SGD keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::sgd);
}
TEMPLATE_TEST_CASE("Adam keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::adam);
}
TEMPLATE_TEST_CASE("AdamW keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::adamw);
}
TEMPLATE_TEST_CASE("RAdam keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::radam);
}
TEMPLATE_TEST_CASE("RMSprop keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::rmsprop);
}
TEMPLATE_TEST_CASE("Lion keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::lion);
}
TEMPLATE_TEST_CASE("Adafactor keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::adafactor);
}
TEMPLATE_TEST_CASE("Lookahead keeps the optimizer contracts", "[optim][contract]", float, double) {
    check_contracts<TestType>(&Makers<TestType>::lookahead);
    check_contracts<TestType>(&Makers<TestType>::lookahead_adafactor);
}

TEMPLATE_TEST_CASE("SAM: reset, state and allocation contracts", "[optim][contract][sam]", float, double) {
    using T = TestType;
    auto grad = [](VecCRef<T> w, VecRef<T> out) { out = (w.array() - T(0.5)) * w.array().abs() + T(0.1); };
    auto make = [] { return SAM<Adam<T>>(Makers<T>::adam(), {.rho = T(0.1)}); };
    const Vec<T> p0 = Vec<T>::LinSpaced(kN, T(-1), T(1.5));
    auto run = [&](SAM<Adam<T>>& s, Vec<T> p, int steps) {
        for (int i = 0; i < steps; ++i) s.step(p, grad);
        return p;
    };
    auto fresh = make();
    const Vec<T> expect = run(fresh, p0, 30);
    auto used = make();
    run(used, p0, 17);
    used.reset();
    CHECK(run(used, p0, 30) == expect);

    std::set<std::string> names;
    used.visit_state([&](const TensorRef& t) { names.insert(t.name); });
    CHECK(names == std::set<std::string>{"inner.m", "inner.v", "inner.v_max", "inner.step"});

    Vec<T> p = p0;
    used.step(p, grad);
    const long before = g_news.load();
    {
        persist_test::NoEigenMalloc guard;
        for (int i = 0; i < 10; ++i) used.step(p, grad);
    }
    CHECK(g_news.load() == before);
    CHECK_THROWS_AS(SAM<Adam<T>>(Makers<T>::adam(), {.rho = T(-0.1)}), ConfigError);
}

TEST_CASE("State tensors have the documented names", "[optim][contract]") {
    auto names = [](auto&& opt) {
        std::vector<std::string> out;
        opt.visit_state([&](const TensorRef& t) { out.push_back(t.name); });
        return out;
    };
    using V = std::vector<std::string>;
    CHECK(names(SGD<double>(3)) == V{"step"});
    CHECK(names(SGD<double>(3, {.momentum = 0.9})) == V{"momentum_buffer", "step"});
    CHECK(names(Adam<double>(3)) == V{"m", "v", "step"});
    CHECK(names(AdamW<double>(3, {.amsgrad = true})) == V{"m", "v", "v_max", "step"});
    CHECK(names(RAdam<double>(3)) == V{"m", "v", "step"});
    CHECK(names(RMSprop<double>(3, {.momentum = 0.9, .centered = true})) ==
          V{"square_avg", "grad_avg", "momentum_buffer", "step"});
    CHECK(names(Lion<double>(3)) == V{"m", "step"});
    CHECK(names(Adafactor<double>(10, {{0, 2, 3}})) == V{"row", "col", "v", "step"});
    CHECK(names(Adafactor<double>(6)) == V{"v", "step"});
    CHECK(names(Lookahead<Lion<double>>(Lion<double>(3))) == V{"slow", "step", "inner.m", "inner.step"});
    CHECK(names(NullOptimizer<double>(3)) == V{"step"});
    CHECK(names(ConstantLr<double>()) == V{"t"});
}

TEST_CASE("Bad hyperparameters throw ConfigError naming optimizer, parameter and value",
          "[optim][contract][config]") {
    using D = double;
    const D nan = std::numeric_limits<D>::quiet_NaN();
    // SGD
    expect_config_error([] { SGD<D>(4, {.lr = -0.5}); }, "SGD", "lr", "-0.5");
    expect_config_error([&] { SGD<D>(4, {.lr = nan}); }, "SGD", "lr", "nan");
    expect_config_error([] { SGD<D>(4, {.momentum = 1.0}); }, "SGD", "momentum", "1");
    expect_config_error([] { SGD<D>(4, {.momentum = -0.1}); }, "SGD", "momentum", "-0.1");
    expect_config_error([] { SGD<D>(4, {.dampening = 1.5}); }, "SGD", "dampening", "1.5");
    expect_config_error([] { SGD<D>(4, {.weight_decay = -1e-3}); }, "SGD", "weight_decay", "-0.001");
    expect_config_error([] { SGD<D>(4, {.nesterov = true}); }, "SGD", "nesterov", "momentum = 0");
    expect_config_error([] { SGD<D>(4, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); }, "SGD",
                        "nesterov", "dampening = 0.1");
    expect_config_error([] { SGD<D>(0); }, "SGD", "n_params", "0");
    // Adam / AdamW
    expect_config_error([] { Adam<D>(4, {.beta1 = 1.5}); }, "Adam", "beta1", "1.5");
    expect_config_error([] { Adam<D>(4, {.beta2 = 1.0}); }, "Adam", "beta2", "1");
    expect_config_error([] { Adam<D>(4, {.eps = -1e-8}); }, "Adam", "eps", "-1e-08");
    expect_config_error([] { AdamW<D>(4, {.beta1 = -0.1}); }, "AdamW", "beta1", "-0.1");
    expect_config_error([] { AdamW<D>(4, {.weight_decay = -0.01}); }, "AdamW", "weight_decay", "-0.01");
    expect_config_error([] { AdamW<D>(4, {.lr = -1}); }, "AdamW", "lr", "-1");
    // RAdam
    expect_config_error([] { RAdam<D>(4, {.beta2 = 2}); }, "RAdam", "beta2", "2");
    expect_config_error([] { RAdam<D>(4, {.eps = -1}); }, "RAdam", "eps", "-1");
    // RMSprop
    expect_config_error([] { RMSprop<D>(4, {.alpha = 1}); }, "RMSprop", "alpha", "1");
    expect_config_error([] { RMSprop<D>(4, {.momentum = 1.2}); }, "RMSprop", "momentum", "1.2");
    expect_config_error([] { RMSprop<D>(4, {.eps = -2}); }, "RMSprop", "eps", "-2");
    // Lion
    expect_config_error([] { Lion<D>(4, {.beta1 = 1}); }, "Lion", "beta1", "1");
    expect_config_error([] { Lion<D>(4, {.beta2 = -0.5}); }, "Lion", "beta2", "-0.5");
    expect_config_error([] { Lion<D>(4, {.weight_decay = -3}); }, "Lion", "weight_decay", "-3");
    // Adafactor
    expect_config_error([] { Adafactor<D>(4, {}, {.decay_rate = 0}); }, "Adafactor", "decay_rate", "0");
    expect_config_error([] { Adafactor<D>(4, {}, {.decay_rate = 1.5}); }, "Adafactor", "decay_rate", "1.5");
    expect_config_error([] { Adafactor<D>(4, {}, {.clip_threshold = 0}); }, "Adafactor", "clip_threshold", "0");
    expect_config_error([] { Adafactor<D>(4, {}, {.beta1 = 1}); }, "Adafactor", "beta1", "1");
    expect_config_error([] { Adafactor<D>(4, {}, {.eps2 = -1}); }, "Adafactor", "eps2", "-1");
    // Lookahead / SAM
    expect_config_error([] { Lookahead<SGD<D>>(SGD<D>(4), {.k = 0}); }, "Lookahead", "k", "0");
    expect_config_error([] { Lookahead<SGD<D>>(SGD<D>(4), {.alpha = 0}); }, "Lookahead", "alpha", "0");
    expect_config_error([] { Lookahead<SGD<D>>(SGD<D>(4), {.alpha = 1.1}); }, "Lookahead", "alpha", "1.1");
    expect_config_error([] { SAM<SGD<D>>(SGD<D>(4), {.rho = -0.05}); }, "SAM", "rho", "-0.05");
    // Schedules
    expect_config_error([] { ConstantLr<D>({.lr = -1}); }, "ConstantLr", "lr", "-1");
    expect_config_error([] { LinearWarmup<D>({.warmup_steps = 0}); }, "LinearWarmup", "warmup_steps", "0");
    expect_config_error([] { LinearWarmup<D>({.start_factor = 2}); }, "LinearWarmup", "start_factor", "2");
    expect_config_error([] { CosineWarmRestarts<D>({.t0 = 0}); }, "CosineWarmRestarts", "t0", "0");
    expect_config_error([] { CosineWarmRestarts<D>({.t_mult = 0}); }, "CosineWarmRestarts", "t_mult", "0");
    expect_config_error([] { CosineWarmRestarts<D>({.lr = 0.1, .eta_min = 0.2}); }, "CosineWarmRestarts",
                        "eta_min", "0.2");
    expect_config_error([] { WarmupCosine<D>({.warmup_steps = 0}); }, "LinearWarmup", "warmup_steps", "0");
    // Clipping
    Vec<D> g = Vec<D>::Ones(3);
    expect_config_error([&] { clip_grad_norm(g, -1.0); }, "clip_grad_norm", "max_norm", "-1");
    expect_config_error([&] { clip_grad_norm(g, 1.0, 0.5); }, "clip_grad_norm", "norm_type", "0.5");
}

TEST_CASE("Adafactor rejects layouts that do not fit", "[optim][contract][adafactor]") {
    using D = double;
    expect_throw<ShapeError>([] { Adafactor<D>(10, {{0, 3, 4}}); }, {"Adafactor", "layout[0]", "3 x 4"});
    expect_throw<ShapeError>([] { Adafactor<D>(20, {{0, 2, 2}, {3, 2, 2}}); },
                             {"Adafactor", "layout[1]", "overlaps", "layout[0]"});
    expect_throw<ShapeError>([] { Adafactor<D>(20, {{0, 0, 2}}); }, {"Adafactor", "rows"});
    CHECK_THROWS_AS(Adafactor<D>(20, {{-1, 2, 2}}), ShapeError);
}

TEST_CASE("Schedules drive any optimizer and restart after a fire", "[optim][schedule]") {
    WarmupCosine<double> sched({.lr = 0.1, .start_factor = 0.1, .warmup_steps = 4, .eta_min = 0.0, .t0 = 8});
    Lookahead<Lion<float>> opt(Lion<float>(3));
    std::vector<double> first;
    for (int t = 0; t < 20; ++t) {
        first.push_back(sched.apply(opt));
        CHECK(static_cast<double>(opt.lr()) == Approx(first.back()));
        CHECK(static_cast<double>(opt.inner().lr()) == Approx(first.back()));
        sched.advance();
    }
    CHECK(first[0] == Approx(0.01));
    CHECK(first[4] == Approx(0.1));          // end of warm-up = start of the first cosine cycle
    CHECK(first[12] == Approx(0.1));         // warm restart after t0 = 8 cosine steps
    CHECK(first[8] == Approx(0.05));         // half way through the cycle
    sched.restart();                         // fire event: warm up again
    CHECK(sched.step_count() == 0);
    CHECK(sched.apply(opt) == Approx(0.01));
    std::int64_t* t = nullptr;
    sched.visit_state([&](const TensorRef& r) { t = static_cast<std::int64_t*>(r.data); });
    REQUIRE(t != nullptr);
    *t = 12;  // a checkpoint restores the position
    CHECK(sched.lr() == Approx(0.1));
}
