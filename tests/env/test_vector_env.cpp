// VectorEnv: every copy is exactly a standalone env reset with the documented seed sequence
// (same-step autoreset), batched results, no allocation per step, bad input.
#include "env/alloc_counter.hpp"  // first: Eigen allocation guard

#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "persist/env/cartpole.hpp"
#include "persist/env/gridlife.hpp"
#include "persist/env/pendulum.hpp"
#include "persist/env/vector_env.hpp"

using namespace persist;
using namespace persist::env;

namespace {

/// Steps a VectorEnv and N standalone copies side by side for `steps` steps; next_action(i, t)
/// gives copy i's action. Checks every column, including final observations and autoresets.
template <class Env, class Actions, class Fill>
void compare_with_standalone(const Env& proto, Index N, std::uint64_t seed, int steps, Actions actions,
                             Fill fill) {
    using T = scalar_of<Env>;
    VectorEnv<Env> venv(N, proto);
    VectorTimeStep<T> out;
    venv.reset(seed, out);
    std::vector<Env> solo(static_cast<std::size_t>(N), proto);
    std::vector<TimeStep<T>> ts(static_cast<std::size_t>(N));
    std::vector<std::uint64_t> episode(static_cast<std::size_t>(N), 0);
    for (Index i = 0; i < N; ++i) {
        solo[std::size_t(i)].reset(seed + std::uint64_t(i), ts[std::size_t(i)]);
        REQUIRE(Vec<T>(out.observation.col(i)) == ts[std::size_t(i)].observation);
        REQUIRE(Vec<T>(out.internal.col(i)) == ts[std::size_t(i)].internal);
        REQUIRE(venv.episodes_started(i) == 1);
    }
    long resets = 0;
    for (int t = 0; t < steps; ++t) {
        fill(t, actions);
        venv.step(actions, out);
        for (Index i = 0; i < N; ++i) {
            auto& s = ts[std::size_t(i)];
            if constexpr (ContinuousEnvironment<Env>)
                solo[std::size_t(i)].step(actions.col(i), s);
            else
                solo[std::size_t(i)].step(actions[std::size_t(i)], s);
            REQUIRE(out.reward[i] == s.reward);
            REQUIRE(out.terminated[i] == s.terminated);
            REQUIRE(out.truncated[i] == s.truncated);
            if (s.done()) {
                REQUIRE(Vec<T>(out.final_observation.col(i)) == s.observation);
                REQUIRE(Vec<T>(out.final_internal.col(i)) == s.internal);
                auto& k = episode[std::size_t(i)];
                ++k;
                // the documented derivation, spelled out: episode k of copy i uses seed + i + k N
                solo[std::size_t(i)].reset(seed + std::uint64_t(i) + k * std::uint64_t(N), s);
                ++resets;
            }
            REQUIRE(Vec<T>(out.observation.col(i)) == s.observation);
            REQUIRE(Vec<T>(out.internal.col(i)) == s.internal);
            REQUIRE(venv.episodes_started(i) == episode[std::size_t(i)] + 1);
        }
    }
    CHECK(resets >= N);  // the comparison went through autoresets
}

}  // namespace

TEST_CASE("VectorEnv<GridLife>: copy i == standalone GridLife with seeds seed + i + k N", "[env][vector]") {
    const Index N = 4;
    Mat<double> actions(2, N);
    Rng rng(3);
    compare_with_standalone(GridLife<double>(), N, 100, 1500, actions, [&](int, Mat<double>& a) {
        for (Index k = 0; k < a.size(); ++k) a.data()[k] = rng.uniform<double>(-1.0, 1.0);
    });
}

TEST_CASE("VectorEnv<CartPole> (discrete) and <Pendulum> (truncation)", "[env][vector]") {
    const Index N = 3;
    std::vector<Index> actions(N);
    Rng rng(5);
    compare_with_standalone(CartPole<float>(), N, 7, 400, actions, [&](int, std::vector<Index>& a) {
        for (auto& v : a) v = Index(rng.below(2));
    });
    Mat<float> torque(1, N);
    compare_with_standalone(Pendulum<float>(), N, 9, 450, torque, [&](int, Mat<float>& a) {
        for (Index k = 0; k < a.size(); ++k) a.data()[k] = rng.uniform<float>(-2.0f, 2.0f);
    });
}

TEST_CASE("VectorEnv: seeds, shapes, errors", "[env][vector]") {
    using V = VectorEnv<GridLife<double>>;
    STATIC_REQUIRE(V::episode_seed(10, 4, 0, 0) == 10);
    STATIC_REQUIRE(V::episode_seed(10, 4, 3, 0) == 13);
    STATIC_REQUIRE(V::episode_seed(10, 4, 1, 2) == 19);
    // The N copies never share an episode seed.
    std::vector<std::uint64_t> seen;
    for (Index i = 0; i < 4; ++i)
        for (std::uint64_t k = 0; k < 10; ++k) seen.push_back(V::episode_seed(0, 4, i, k));
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());

    CHECK_THROWS_WITH(V(0, GridLife<double>()), Catch::Contains("num_envs = 0"));
    V venv(3, GridLife<double>(GridLifeConfig{.partial_observability = true}));
    VectorTimeStep<double> out;
    Mat<double> a = Mat<double>::Zero(2, 3);
    CHECK_THROWS_WITH(venv.step(a, out), Catch::Contains("before reset"));
    venv.reset(0, out);
    CHECK(out.observation.rows() == venv.observation_dim());
    CHECK(out.observation.cols() == 3);
    CHECK(out.internal.rows() == 3);
    CHECK(out.size() == 3);
    CHECK_THROWS_AS(venv.step(Mat<double>::Zero(2, 2), out), ShapeError);
    CHECK_THROWS_AS(venv.step(Mat<double>::Zero(3, 3), out), ShapeError);
    a(0, 1) = 2.0;
    CHECK_THROWS_WITH(venv.step(a, out), Catch::Contains("action[0] = 2"));
    // Per-copy access, e.g. a curriculum applied to every copy.
    venv.for_each([](GridLife<double>& e) { e.set_bounds(var_energy, 0.3, 1.0); });
    for (Index i = 0; i < 3; ++i) CHECK(venv.env(i).lower_bound(var_energy) == 0.3);
}

TEST_CASE("VectorEnv: step never allocates, autoresets included", "[env][vector][alloc]") {
    const Index N = 4;
    VectorEnv<GridLife<float>> venv(N, GridLife<float>());
    VectorTimeStep<float> out;
    venv.reset(1, out);
    Mat<float> a(2, N);
    Rng rng(2);
    long dones = 0;
    const long n = envtest::count_allocations([&] {
        for (int t = 0; t < 1000; ++t) {
            for (Index k = 0; k < a.size(); ++k) a.data()[k] = rng.uniform<float>(-1.0f, 1.0f);
            venv.step(a, out);
            for (Index i = 0; i < N; ++i) dones += out.done(i);
        }
    });
    CHECK(n == 0);
    CHECK(dones > N);

    VectorEnv<CartPole<double>> vc(N, CartPole<double>());
    VectorTimeStep<double> oc;
    vc.reset(1, oc);
    std::vector<Index> acts(N, 0);
    const long m = envtest::count_allocations([&] {
        for (int t = 0; t < 500; ++t) {
            for (auto& v : acts) v = Index(rng.below(2));
            vc.step(acts, oc);
        }
    });
    CHECK(m == 0);
}
