// No allocation at a fixed batch size after the first call: reward() at B = 1 (acting) and
// update() at B = 32 (learning) alternate without touching the heap.
#include "intrinsic/intrinsic_test.hpp"

#include <vector>

// The replacement operator new/delete live in alloc_counter.cpp (a unit of their own: GCC
// would otherwise inline them into this file and warn about malloc/free pairs).

using namespace intrtest;
using persist::intrinsic::NoIntrinsic;
using persist::intrinsic::RND;
using persist::intrinsic::RndRewardNorm;
using persist::intrinsic::RNDOptions;
using persist::intrinsic::RunningMeanStd;
using persist::intrinsic::Surprise;
using persist::intrinsic::SurpriseNorm;
using persist::intrinsic::SurpriseOptions;

TEST_CASE("the counter sees allocations", "[intrinsic][alloc]") {
    if (!kCountNew) return;
    long n = count_allocations([] {
        std::vector<double> v(100, 1.0);
        volatile double sink = v[7];
        (void)sink;
    });
    CHECK(n >= 1);
    n = count_allocations([] {
        persist::Vec<double> v(100);
        v.setZero();
    });
    CHECK(n >= 1);  // Eigen's heap
}

TEMPLATE_TEST_CASE("intrinsic rewards do not allocate after warm-up", "[intrinsic][alloc]", float, double) {
    using T = TestType;
    const Index O = 5, I = 3, A = 2, Bu = 32;
    Rng rng(10);
    const auto batch = random_batch<T>(rng, O, I, A, Bu);
    const auto one = random_batch<T>(rng, O, I, A, 1);
    const Mat<T> s1 = states(one);
    Vec<T> out(1), out_b(Bu);

    SECTION("NoIntrinsic") {
        NoIntrinsic<T> none;
        const long n = count_allocations([&] {
            for (int i = 0; i < 3; ++i) {
                none.reward(s1, one.action, one.next_observation, out);
                none.update(batch);
            }
        });
        CHECK(n == 0);
    }
    SECTION("Surprise") {
        SurpriseOptions o;
        o.obs_dim = O;
        o.internal_dim = I;
        o.action_dim = A;
        o.hidden = {64, 64};
        o.beta = 0.1;
        o.mu = {0.7, 0.5, 0.9};
        o.normalize = SurpriseNorm::standardize;
        o.max_grad_norm = 1.0;
        o.layer_norm = true;
        Surprise<T> sur(o);
        auto tick = [&] {
            sur.reward(s1, one.action, one.next_observation, out);
            sur.reward_with_prior(s1, one.action, one.next_observation, one.next_internal, out);
            sur.nll(s1, one.action, one.next_observation, out);
            sur.update(batch);
        };
        tick();  // warm-up: workspaces sized at B = 1 and B = 32
        const long n = count_allocations([&] {
            for (int i = 0; i < 5; ++i) tick();
        });
        CHECK(n == 0);
    }
    SECTION("RND") {
        RNDOptions o;
        o.obs_dim = O;
        o.output_dim = 64;
        o.hidden = {64, 64};
        o.predictor_extra = {64};
        o.update_proportion = 0.5;
        o.max_grad_norm = 1.0;
        for (const auto mode : {RndRewardNorm::return_std, RndRewardNorm::reward_std, RndRewardNorm::none}) {
            o.reward_norm = mode;
            RND<T> rnd(o);
            Mat<T> z;
            auto tick = [&] {
                rnd.reward(s1, one.action, one.next_observation, out);
                rnd.score(batch.next_observation, out_b);
                rnd.prediction_error(batch.next_observation, out_b);
                rnd.observe(batch.next_observation);
                rnd.normalize_observations(batch.next_observation, z);
                rnd.update(batch);
            };
            tick();
            const long n = count_allocations([&] {
                for (int i = 0; i < 5; ++i) tick();
            });
            CHECK(n == 0);
        }
    }
    SECTION("RunningMeanStd") {
        RunningMeanStd<T> r(O), r2(O);
        const long n = count_allocations([&] {
            r.update(batch.next_observation);
            r.update(batch.next_observation.col(3));
            r2.update(batch.observation);
            r.merge(r2);
        });
        CHECK(n == 0);
    }
}
