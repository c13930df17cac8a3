// SAC allocates nothing in update(), act() or act_deterministic() at a fixed batch size, after
// the first call at that size. alloc_counter.cpp replaces the global operator new/delete to count
// allocations; Eigen is built with EIGEN_RUNTIME_NO_MALLOC and a counting eigen_assert to see
// its own heap use (as tests/nn/test_alloc.cpp does).
#include "agents/alloc_counter.hpp"  // first: Eigen's allocation hooks

#include <catch2/catch.hpp>

#include <cmath>
#include <utility>
#include <vector>

#include "agents/sac_fixtures.hpp"
#include "persist/agents/sac.hpp"

namespace {

using persist::Index;
using persist::Rng;
using persist::Vec;

using agentstest::count_allocations;

template <class T>
void check_no_allocation(std::vector<Index> hidden, Index obs, Index internal, Index B, Index threads = 1) {
    const Vec<T> lo = Vec<T>::Constant(2, T(-1)), hi = Vec<T>::Constant(2, T(2));
    persist::agents::SACOptions o;
    o.hidden = std::move(hidden);
    o.threads = threads;
    persist::agents::SAC<T> sac(obs, internal, lo, hi, o);
    Rng rng(1);
    const auto b1 = sactest::random_batch<T>(obs, internal, lo, hi, B, rng);
    const auto b2 = sactest::random_batch<T>(obs, internal, lo, hi, B, rng);
    Vec<T> s = Vec<T>::Constant(obs + internal, T(0.3)), a(2);
    // First calls at these sizes shape the workspaces (and the GEMM packing buffers).
    sac.update(b1);
    sac.act(s, a, rng);
    sac.act_deterministic(s, a);

    typename persist::agents::SAC<T>::Stats st;
    const long n_update = count_allocations([&] {
        st = sac.update(b2);
        st = sac.update(b1);
    });
    const long n_act = count_allocations([&] {
        for (int k = 0; k < 3; ++k) sac.act(s, a, rng);
    });
    const long n_det = count_allocations([&] { sac.act_deterministic(s, a); });
    CHECK(n_update == 0);
    CHECK(n_act == 0);
    CHECK(n_det == 0);
    CHECK(std::isfinite(static_cast<double>(st.q_loss)));
    CHECK(sac.updates() == 3);
}

}  // namespace

TEST_CASE("SAC update/act allocate nothing at a fixed batch size (float, 256x256, B = 256)",
          "[agents][sac][alloc]") {
    check_no_allocation<float>({256, 256}, 32, 0, 256);
}

TEST_CASE("SAC update/act allocate nothing (double, internal variables, B = 7)", "[agents][sac][alloc]") {
    check_no_allocation<double>({16, 8}, 3, 2, 7);
}

TEST_CASE("SAC with threads = 2 allocates nothing either (helper thread and actor blocks included)",
          "[agents][sac][alloc]") {
    check_no_allocation<float>({64, 64}, 32, 0, 64, 2);
    check_no_allocation<double>({24, 24}, 3, 2, 40, 2);
}

TEST_CASE("SAC with kept demonstrations: update and behavior_clone allocate nothing after the first call",
          "[agents][sac][alloc][bc]") {
    using T = float;
    const Index obs = 5, internal = 3, B = 32;
    const Vec<T> lo = Vec<T>::Constant(2, T(-1)), hi = Vec<T>::Constant(2, T(2));
    persist::agents::SACOptions o;
    o.hidden = {64, 64};
    persist::agents::SAC<T> sac(obs, internal, lo, hi, o);
    Rng rng(2);
    persist::agents::DemoBatch<T> demos;
    demos.observation = persist::Mat<T>::Random(obs, 100);
    demos.internal = persist::Mat<T>::Random(internal, 100);
    demos.action = persist::Mat<T>::Constant(2, 100, T(0.5));
    sac.set_demonstrations(demos, T(1), 16);
    const auto b1 = sactest::random_batch<T>(obs, internal, lo, hi, B, rng);
    const auto b2 = sactest::random_batch<T>(obs, internal, lo, hi, B, rng);
    persist::agents::DemoBatch<T> bc{demos.observation.leftCols(16), demos.internal.leftCols(16),
                                     demos.action.leftCols(16)};
    sac.update(b1);  // shapes the workspaces, including the BC ones
    sac.behavior_clone(bc);
    typename persist::agents::SAC<T>::Stats st;
    const long n = count_allocations([&] {
        st = sac.update(b2);
        st = sac.update(b1);
        sac.behavior_clone(bc);
    });
    CHECK(n == 0);
    CHECK(st.bc_loss != T(0));  // computed (a negative log-density may be negative)
    CHECK(std::isfinite(static_cast<double>(st.bc_loss)));
}
