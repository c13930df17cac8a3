/// @file bench_amortized.cpp
/// One amortized-shield decision (shield/amortized_shield.hpp: g_phi forward pass at B = 1 plus
/// its predictive check(s)) against one decision of the search it amortizes, on the same unsafe
/// actions, float, one thread, default network {256, 256}.
///
/// Searches benchmarked here are MOCKS (tests/shield/amortized/mock_search.hpp): an analytic
/// half-plane projection, and a CEM of 64 candidates x 4 iterations over the mock's analytic
/// check (the cost structure of the rollout shield's projection, 256 checks per decision, with
/// a check that costs nanoseconds instead of K x h model steps). The ratio that matters,
/// search time / amortized time, therefore has to be re-measured against RolloutShield, whose
/// check dominates both sides: instantiate `bench_search` / `bench_amortized` with it.
///
/// Counters: `checks` (predictive checks per decision), `fallback_rate` (share of decisions
/// that went back to the search), `net_accept_rate`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "mock_search.hpp"
#include "persist/core/random.hpp"
#include "persist/shield/amortized_shield.hpp"

namespace {

using namespace amortizedtest;
using persist::Rng;
using persist::Vec;
using persist::shield::AmortizedShield;
using persist::shield::AmortizedShieldOptions;
using T = float;

/// A cross-entropy-method projection over any ProbabilisticShield's check (Rubinstein 1999):
/// minimise ||a' - a||^2 + penalty * [Pr(a') < alpha] over `population` Gaussian candidates,
/// refit mean/std to the `elites` best, `iterations` times. Bench-only stand-in for a search.
template <class Inner>
struct CemOverCheck {
    using scalar_type = T;
    Inner inner;
    int iterations = 4, population = 64, elites = 8;
    T alpha = T(0.97), init_std = T(0.5);
    Rng rng{123};
    Vec<T> mean{kAct}, stdv{kAct}, cand, cost, best{kAct};
    std::vector<int> order;

    T probability(persist::VecCRef<T> a, persist::VecCRef<T> o, persist::VecCRef<T> x) {
        return inner.probability(a, o, x);
    }
    persist::ShieldDecision<T> project(persist::VecCRef<T> a, persist::VecCRef<T> o, persist::VecCRef<T> x,
                                       persist::VecRef<T> a_safe) {
        persist::ShieldDecision<T> d;
        if (inner.probability(a, o, x) >= alpha) {
            a_safe = a;
            return d;
        }
        cand.resize(kAct * population);
        cost.resize(population);
        order.resize(static_cast<std::size_t>(population));
        mean = a;
        stdv.setConstant(init_std);
        T best_cost = std::numeric_limits<T>::infinity();
        for (int it = 0; it < iterations; ++it) {
            for (int c = 0; c < population; ++c) {
                auto ac = cand.segment(c * kAct, kAct);
                for (Index i = 0; i < kAct; ++i)
                    ac[i] = std::clamp(mean[i] + stdv[i] * rng.normal<T>(), T(-1), T(1));
                const T p = inner.probability(ac, o, x);
                cost[c] = (ac - a).squaredNorm() + (p >= alpha ? T(0) : T(100));
                if (cost[c] < best_cost) {
                    best_cost = cost[c];
                    best = ac;
                }
                order[static_cast<std::size_t>(c)] = c;
            }
            std::partial_sort(order.begin(), order.begin() + elites, order.end(),
                              [&](int i, int j) { return cost[i] < cost[j]; });
            mean.setZero();
            for (int e = 0; e < elites; ++e) mean += cand.segment(order[static_cast<std::size_t>(e)] * kAct, kAct);
            mean /= T(elites);
            stdv.setZero();
            for (int e = 0; e < elites; ++e)
                stdv += (cand.segment(order[static_cast<std::size_t>(e)] * kAct, kAct) - mean).cwiseAbs2();
            stdv = (stdv / T(elites)).cwiseSqrt().cwiseMax(T(1e-3));
        }
        a_safe = best;
        d.projected = true;
        d.feasible = best_cost < T(100);
        d.probability = d.feasible ? T(1) : T(0);
        d.distance = (best - a).norm();
        return d;
    }
};

/// Unsafe (a, o, x) triples: the decisions where the two shields differ in cost.
std::vector<Sample<T>> unsafe_samples(int n) {
    HalfPlaneSearch<T> m;
    Rng rng(5);
    std::vector<Sample<T>> out;
    Sample<T> s;
    while (static_cast<int>(out.size()) < n) {
        s.draw(rng);
        if (!m.safe(s.a, s.o, s.x)) out.push_back(s);
    }
    return out;
}

template <class Search>
void bench_search(benchmark::State& state, Search search) {
    const auto samples = unsafe_samples(1024);
    Vec<T> out(kAct);
    std::size_t k = 0;
    for (auto _ : state) {
        const auto& s = samples[k++ & 1023];
        auto d = search.project(s.a, s.o, s.x, out);
        benchmark::DoNotOptimize(d);
        benchmark::DoNotOptimize(out.data());
    }
}

/// Trains g_phi on the mock's projection in search mode (4000 decisions, 1 step each, + 4000
/// updates), then times amortized-mode decisions on unsafe actions (no training on fallback).
template <class Search>
void bench_amortized(benchmark::State& state, Search search, bool precheck) {
    AmortizedShieldOptions opt;
    opt.switch_after_steps = 4000;
    opt.min_samples = 500;
    opt.capacity = 8000;
    opt.precheck = precheck;
    opt.train_steps_per_fallback = 0;
    AmortizedShield<Search> sh(std::move(search), kObs, kInt, box_low<T>(), box_high<T>(), opt);
    Rng rng(9);
    Sample<T> s;
    Vec<T> out(kAct);
    for (int t = 0; t < 4000; ++t) {
        s.draw(rng);
        sh.project(s.a, s.o, s.x, out);
    }
    for (int k = 0; k < 4000; ++k) sh.update();
    const auto samples = unsafe_samples(1024);
    const auto st0 = sh.stats();
    std::size_t k = 0;
    for (auto _ : state) {
        const auto& u = samples[k++ & 1023];
        auto d = sh.project(u.a, u.o, u.x, out);
        benchmark::DoNotOptimize(d);
        benchmark::DoNotOptimize(out.data());
    }
    const auto& st = sh.stats();
    const double n = static_cast<double>(st.decisions - st0.decisions);
    state.counters["checks"] = static_cast<double>(st.probability_calls - st0.probability_calls) / n;
    state.counters["fallback_rate"] = static_cast<double>(st.fallbacks - st0.fallbacks) / n;
    state.counters["net_accept_rate"] = static_cast<double>(st.amortized_accepts - st0.amortized_accepts) / n;
}

void BM_SearchAnalytic(benchmark::State& state) { bench_search(state, HalfPlaneSearch<T>{}); }
void BM_SearchCem64x4(benchmark::State& state) { bench_search(state, CemOverCheck<HalfPlaneSearch<T>>{}); }
void BM_AmortizedPrecheck(benchmark::State& state) { bench_amortized(state, HalfPlaneSearch<T>{}, true); }
void BM_AmortizedNoPrecheck(benchmark::State& state) { bench_amortized(state, HalfPlaneSearch<T>{}, false); }
void BM_AmortizedOverCem(benchmark::State& state) {
    bench_amortized(state, CemOverCheck<HalfPlaneSearch<T>>{}, true);
}

/// g_phi's forward pass alone (B = 1, input 3 + 2 + 3, {256, 256}, output 3).
void BM_NetworkForward(benchmark::State& state) {
    persist::nn::MLP<T> net({kObs + kInt + kAct, 256, 256, kAct});
    Rng rng(1);
    net.init(rng);
    auto ws = net.make_workspace();
    persist::Mat<T> x = persist::Mat<T>::Random(kObs + kInt + kAct, 1);
    for (auto _ : state) {
        const auto& y = net.forward(x, ws);
        benchmark::DoNotOptimize(y.data());
    }
}

BENCHMARK(BM_NetworkForward);
BENCHMARK(BM_SearchAnalytic);
BENCHMARK(BM_SearchCem64x4);
BENCHMARK(BM_AmortizedPrecheck);
BENCHMARK(BM_AmortizedNoPrecheck);
BENCHMARK(BM_AmortizedOverCem);

}  // namespace

int main(int argc, char** argv) {
    Eigen::setNbThreads(1);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("persist_threads", "1");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
