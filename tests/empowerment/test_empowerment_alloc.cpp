// No allocation after warm-up: reward() at B = 1 (acting; k = 1 and k = 3 with its windows and
// normalisation), estimate(), and the learning calls at a fixed batch size (update,
// update_from_replay) alternate without touching the heap (operator new and Eigen's heap are
// counted: intrinsic/intrinsic_test.hpp, intrinsic/alloc_counter.cpp).
#include "intrinsic/intrinsic_test.hpp"

#include "persist/intrinsic/empowerment.hpp"
#include "persist/replay/ring_replay.hpp"

using namespace intrtest;
using persist::intrinsic::Empowerment;
using persist::intrinsic::EmpowermentNorm;
using persist::intrinsic::EmpowermentOptions;

TEMPLATE_TEST_CASE("Empowerment does not allocate after warm-up", "[empowerment][alloc]", float, double) {
    using T = TestType;
    const Index O = 5, I = 3, A = 2;
    Rng rng(10);
    const auto batch = random_batch<T>(rng, O, I, A, 64);
    for (const Index k : {Index(1), Index(3)}) {
        EmpowermentOptions o;
        o.obs_dim = O;
        o.internal_dim = I;
        o.action_dim = A;
        o.k = k;
        o.hidden = {64, 64};
        o.embedding_dim = 32;
        o.max_grad_norm = 1.0;
        o.normalize = EmpowermentNorm::standardize;
        Empowerment<T> emp(o);
        persist::replay::RingReplay<T> rb(256, {.observation = O, .internal = I, .action = A});
        for (Index t = 0; t < 256; ++t) {
            const Index c = t % 64;
            rb.add(persist::TransitionView<T>{batch.observation.col(c), batch.internal.col(c), batch.action.col(c), T(0),
                                              batch.next_observation.col(c), batch.next_internal.col(c), false,
                                              t % 50 == 49});
        }
        const auto one = random_batch<T>(rng, O, I, A, 1);
        Mat<T> s1 = states(one);
        const Mat<T> s0e = uniform<T>(rng, O + I, 8), Ae = uniform<T>(rng, k * A, 8), oke = uniform<T>(rng, O, 8);
        Vec<T> out(1), oute(8);
        Rng srng(3);
        int t = 0;
        auto tick = [&] {
            emp.reward(s1, one.action, one.next_observation, out);
            s1.topRows(O) = (t++ % 7 == 6) ? one.observation : one.next_observation;  // continue, or a "reset"
            if (k == 1) {
                emp.update(batch);
            } else {
                emp.update(batch);  // a no-op for k > 1
                emp.update_from_replay(rb, 32, srng);
            }
            emp.estimate(s0e, Ae, oke, oute);
        };
        tick();
        tick();  // warm-up: every workspace sized, the bank set
        const long n = count_allocations([&] {
            for (int i = 0; i < 8; ++i) tick();
        });
        INFO("k = " << k);
        CHECK(n == 0);
        CHECK(emp.has_negatives());
        CHECK(out.allFinite());
    }
}
