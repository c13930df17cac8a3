// AmortizedShield allocates nothing per decision after construction: search-mode decisions
// (storing pairs and training), amortized decisions (precheck accept, network accept,
// fallback with training) and explicit update() calls, in float and double, with the default
// 256 x 256 network (whose GEMM packing buffers are the ones that would allocate).
#include "env/alloc_counter.hpp"  // first: Eigen settings for the whole executable

#include <catch2/catch.hpp>

#include <vector>

#include "mock_search.hpp"
#include "persist/shield/amortized_shield.hpp"

using namespace amortizedtest;
using persist::Rng;
using persist::shield::AmortizedShield;
using persist::shield::AmortizedShieldOptions;

TEST_CASE("amortized shield alloc: the counter sees operator new and Eigen heap use", "[shield][amortized][alloc]") {
    CHECK(envtest::count_allocations([] { std::vector<int> v(10); }) > 0);
    CHECK(envtest::count_allocations([] { persist::Vec<double> v(1000); v.setZero(); }) > 0);
    CHECK(envtest::count_allocations([] {}) == 0);
}

TEMPLATE_TEST_CASE("amortized shield: no allocation per decision or update after construction",
                   "[shield][amortized][alloc]", float, double) {
    using T = TestType;
    AmortizedShieldOptions opt;  // default widths and batch size
    opt.capacity = 2000;
    opt.min_samples = 20;
    opt.switch_after_steps = 60;
    opt.identity_fraction = 0.5;
    AmortizedShield<HalfPlaneSearch<T>> sh({}, kObs, kInt, box_low<T>(), box_high<T>(), opt);
    Rng rng(1);
    std::vector<Sample<T>> samples(400);
    for (auto& s : samples) s.draw(rng);
    persist::Vec<T> out(kAct);

    // Search mode, including the first training steps (min_samples reached on the way).
    long n = envtest::count_allocations([&] {
        for (int t = 0; t < 60; ++t) sh.project(samples[t].a, samples[t].o, samples[t].x, out);
    });
    CHECK(n == 0);
    REQUIRE(sh.stats().train_steps > 0);
    REQUIRE(sh.mode() == AmortizedShield<HalfPlaneSearch<T>>::Mode::amortized);

    // Amortized mode: all three paths occur (an undertrained network falls back often).
    const auto st0 = sh.stats();
    n = envtest::count_allocations([&] {
        for (int t = 60; t < 400; ++t) sh.project(samples[t].a, samples[t].o, samples[t].x, out);
    });
    CHECK(n == 0);
    const auto& st = sh.stats();
    CHECK(st.precheck_accepts > st0.precheck_accepts);
    CHECK(st.fallbacks > st0.fallbacks);

    n = envtest::count_allocations([&] {
        for (int k = 0; k < 5; ++k) sh.update();
    });
    CHECK(n == 0);
}
