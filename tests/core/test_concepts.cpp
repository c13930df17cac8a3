// Walls of positive and negative static_asserts: what satisfies each concept and what does
// not (mp-units' habit). Real library types are checked in their own modules' tests too.
#include <catch2/catch.hpp>

#include "persist/core/concepts.hpp"

namespace {
using persist::Index;
using persist::Mat;
using persist::MatCRef;
using persist::MatRef;
using persist::Vec;
using persist::VecCRef;
using persist::VecRef;

struct NoScalar {};
struct IntScalar {
    using scalar_type = int;
};

// --- Stateful -------------------------------------------------------------------------------
struct GoodStateful {
    Vec<double> w = Vec<double>::Zero(3);
    template <class V>
    void visit_state(V&& v) {
        v(persist::state_tensor("w", w.data(), {w.size()}));
    }
};

// --- Layer / Network ----------------------------------------------------------------------
struct ScaleLayer {  // y = s * x with one parameter s
    using scalar_type = double;
    struct Cache {};
    double* p = nullptr;
    double* g = nullptr;
    Index in_dim() const { return 2; }
    Index out_dim() const { return 2; }
    Index param_count() const { return 1; }
    void bind(double* params, double* grads) { p = params, g = grads; }
    void forward(MatCRef<double> in, Mat<double>& out, Cache&) const { out = *p * in; }
    void backward(MatCRef<double> in, MatCRef<double>, MatCRef<double> gout, Mat<double>* gin,
                  Cache&, bool param_grads) {
        if (param_grads) *g += (gout.array() * in.array()).sum();
        if (gin) *gin = *p * gout;
    }
};
struct LayerWithoutBackward {
    using scalar_type = double;
    struct Cache {};
    Index in_dim() const { return 1; }
    Index out_dim() const { return 1; }
    Index param_count() const { return 0; }
    void bind(double*, double*) {}
    void forward(MatCRef<double>, Mat<double>&, Cache&) const {}
};

struct TinyNet {
    using scalar_type = float;
    struct Workspace {
        Mat<float> y;
    };
    Vec<float> p = Vec<float>::Ones(1), g = Vec<float>::Zero(1);
    Index in_dim() const { return 1; }
    Index out_dim() const { return 1; }
    Index param_count() const { return 1; }
    Vec<float>& params() { return p; }
    Vec<float>& grads() { return g; }
    void zero_grad() { g.setZero(); }
    const Mat<float>& forward(MatCRef<float> x, Workspace& ws) const {
        ws.y = p[0] * x;
        return ws.y;
    }
    void backward(Workspace&, MatCRef<float>, Mat<float>*, bool) {}
    template <class V>
    void visit_state(V&& v) {
        v(persist::state_tensor("params", p.data(), {p.size()}));
    }
};
struct NetWithoutState : TinyNet {
    template <class V>
    void visit_state(V&&) = delete;
};

// --- Optimizer ------------------------------------------------------------------------------
struct PlainSgd {
    double lr = 0.1;
    void step(VecRef<double> p, VecCRef<double> g) { p -= lr * g; }
    void reset() {}
    template <class V>
    void visit_state(V&&) {}
};
struct SgdWithoutReset {
    void step(VecRef<double> p, VecCRef<double> g) { p -= g; }
    template <class V>
    void visit_state(V&&) {}
};

// --- Environments ---------------------------------------------------------------------------
struct Walker {  // continuous, with one internal variable
    using scalar_type = double;
    Index observation_dim() const { return 1; }
    Index internal_dim() const { return 1; }
    Index max_episode_steps() const { return 10; }
    Index action_dim() const { return 1; }
    Vec<double> action_low() const { return Vec<double>::Constant(1, -1.0); }
    Vec<double> action_high() const { return Vec<double>::Constant(1, 1.0); }
    void reset(std::uint64_t, persist::TimeStep<double>&) {}
    void step(VecCRef<double>, persist::TimeStep<double>&) {}
    void internal_transition(VecCRef<double> x, VecCRef<double> a, VecCRef<double>,
                             VecRef<double> xn) const {
        xn = x - 0.1 * a;
    }
};
struct Coin {  // discrete
    using scalar_type = float;
    Index observation_dim() const { return 1; }
    Index internal_dim() const { return 0; }
    Index max_episode_steps() const { return 1; }
    Index num_actions() const { return 2; }
    void reset(std::uint64_t, persist::TimeStep<float>&) {}
    void step(Index, persist::TimeStep<float>&) {}
};
struct EnvWithoutReset {
    using scalar_type = double;
    Index observation_dim() const { return 1; }
    Index internal_dim() const { return 0; }
    Index max_episode_steps() const { return 1; }
    Index num_actions() const { return 2; }
    void step(Index, persist::TimeStep<double>&) {}
};
struct EnvStepTakesPointer : Coin {  // step signature the library cannot call
    void step(const float*, int) {}
    void step(Index, persist::TimeStep<float>&) = delete;
};

// --- Homeostat / viability / internal model -------------------------------------------------
struct QuadHomeostat {
    using scalar_type = double;
    Index dim() const { return 1; }
    double reward(VecCRef<double> x) const { return -x.squaredNorm(); }
    void gradient(VecCRef<double> x, VecRef<double> g) const { g = -2 * x; }
};
struct HomeostatWithoutGradient {
    using scalar_type = double;
    Index dim() const { return 1; }
    double reward(VecCRef<double> x) const { return -x.squaredNorm(); }
};
struct BoxViability {
    using scalar_type = double;
    Index dim() const { return 1; }
    Index num_constraints() const { return 2; }
    void margins(MatCRef<double> x, MatRef<double> m) const {
        m.row(0) = x.row(0).array() + 1.0;
        m.row(1) = 1.0 - x.row(0).array();
    }
};
struct ScalarOnlyViability {  // not batched: rejected
    using scalar_type = double;
    Index dim() const { return 1; }
    Index num_constraints() const { return 1; }
    double margin(double x) const { return x; }
};
struct DriftModel {
    using scalar_type = double;
    Index internal_dim() const { return 1; }
    Index action_dim() const { return 1; }
    void predict(MatCRef<double> x, MatCRef<double> a, MatCRef<double>, Mat<double>& xn) {
        xn = x - 0.1 * a;
    }
    void sample(MatCRef<double> x, MatCRef<double> a, MatCRef<double> o, Mat<double>& xn,
                persist::Rng&) {
        predict(x, a, o, xn);
    }
};
struct DeterministicOnlyModel {
    using scalar_type = double;
    Index internal_dim() const { return 1; }
    Index action_dim() const { return 1; }
    void predict(MatCRef<double> x, MatCRef<double>, MatCRef<double>, Mat<double>& xn) { xn = x; }
};

// --- Intrinsic / Shield / Policy / Replay ---------------------------------------------------
struct ZeroIntrinsic {
    using scalar_type = double;
    void reward(MatCRef<double>, MatCRef<double>, MatCRef<double>, VecRef<double> out) {
        out.setZero();
    }
    void update(const persist::TransitionBatch<double>&) {}
};
struct IntrinsicWithoutUpdate {
    using scalar_type = double;
    void reward(MatCRef<double>, MatCRef<double>, MatCRef<double>, VecRef<double> out) {
        out.setZero();
    }
};
struct PassShield {
    using scalar_type = double;
    persist::ShieldDecision<double> project(VecCRef<double> a, VecCRef<double>, VecCRef<double>,
                                            VecRef<double> out) {
        out = a;
        return {};
    }
};
struct ShieldReturningBool {
    using scalar_type = double;
    bool project(VecCRef<double>, VecCRef<double>, VecCRef<double>, VecRef<double>) {
        return true;
    }
};
struct ConstantPolicy {
    using scalar_type = double;
    Index state_dim() const { return 2; }
    Index action_dim() const { return 1; }
    void act(VecCRef<double>, VecRef<double> a, persist::Rng&) { a.setZero(); }
    void act_deterministic(VecCRef<double>, VecRef<double> a) { a.setZero(); }
    void update(const persist::TransitionBatch<double>&) {}
    template <class V>
    void visit_state(V&&) {}
};
struct PolicyWithoutCheckpoint {
    using scalar_type = double;
    Index state_dim() const { return 2; }
    Index action_dim() const { return 1; }
    void act(VecCRef<double>, VecRef<double> a, persist::Rng&) { a.setZero(); }
    void act_deterministic(VecCRef<double>, VecRef<double> a) { a.setZero(); }
    void update(const persist::TransitionBatch<double>&) {}
};
struct CountingReplay {
    using scalar_type = double;
    Index n = 0;
    Index size() const { return n; }
    Index capacity() const { return 100; }
    void add(const persist::TransitionView<double>&) { ++n; }
    void sample(Index, persist::Rng&, persist::TransitionBatch<double>&) {}
    void clear() { n = 0; }
};
struct ReplayWithoutClear {
    using scalar_type = double;
    Index size() const { return 0; }
    Index capacity() const { return 100; }
    void add(const persist::TransitionView<double>&) {}
    void sample(Index, persist::Rng&, persist::TransitionBatch<double>&) {}
};
}  // namespace

// Building blocks
static_assert(persist::Real<float> && persist::Real<double>);
static_assert(!persist::Real<int> && !persist::Real<long double>);
static_assert(!persist::HasScalar<NoScalar> && !persist::HasScalar<IntScalar>);
static_assert(persist::Stateful<GoodStateful>);
static_assert(!persist::Stateful<NoScalar>);

// Networks
static_assert(persist::Layer<ScaleLayer>);
static_assert(!persist::Layer<LayerWithoutBackward>);
static_assert(persist::Network<TinyNet>);
static_assert(!persist::Network<NetWithoutState>);
static_assert(!persist::Network<ScaleLayer>);

// Optimizers
static_assert(persist::Optimizer<PlainSgd, double>);
static_assert(!persist::Optimizer<SgdWithoutReset, double>);
static_assert(!persist::Optimizer<PlainSgd, int>);

// Environments
static_assert(persist::ContinuousEnvironment<Walker> && persist::Environment<Walker>);
static_assert(persist::KnownInternalDynamics<Walker>);
static_assert(persist::DiscreteEnvironment<Coin> && persist::Environment<Coin>);
static_assert(!persist::ContinuousEnvironment<Coin> && !persist::KnownInternalDynamics<Coin>);
static_assert(!persist::Environment<EnvWithoutReset>);
static_assert(!persist::Environment<EnvStepTakesPointer>);

// Homeostasis, viability, internal models
static_assert(persist::Homeostat<QuadHomeostat>);
static_assert(!persist::Homeostat<HomeostatWithoutGradient>);
static_assert(persist::ViabilityModel<BoxViability>);
static_assert(!persist::ViabilityModel<ScalarOnlyViability>);
static_assert(persist::InternalModel<DriftModel>);
static_assert(!persist::InternalModel<DeterministicOnlyModel>);

// Intrinsic, shield, policy, replay
static_assert(persist::Intrinsic<ZeroIntrinsic>);
static_assert(!persist::Intrinsic<IntrinsicWithoutUpdate>);
static_assert(persist::Shield<PassShield>);
static_assert(!persist::Shield<ShieldReturningBool>);
static_assert(persist::Policy<ConstantPolicy>);
static_assert(!persist::Policy<PolicyWithoutCheckpoint>);
static_assert(persist::ReplayBuffer<CountingReplay>);
static_assert(!persist::ReplayBuffer<ReplayWithoutClear>);

TEST_CASE("concept models behave as their contracts say", "[concepts]") {
    // The static_asserts above are the real test; this checks the models do what they claim,
    // so the positive examples are not vacuous.
    ScaleLayer l;
    double p = 2.0, g = 0.0;
    l.bind(&p, &g);
    Mat<double> x(2, 3), y, gin;
    x.setConstant(1.5);
    ScaleLayer::Cache c;
    l.forward(x, y, c);
    CHECK(y(1, 2) == Approx(3.0));
    l.backward(x, y, Mat<double>::Ones(2, 3), &gin, c, true);
    CHECK(g == Approx(9.0));
    CHECK(gin(0, 0) == Approx(2.0));

    BoxViability v;
    Mat<double> xs(1, 3);
    xs << -2.0, 0.0, 0.5;
    Mat<double> m(2, 3);
    v.margins(xs, m);
    CHECK(m(0, 0) < 0);  // below the lower bound: unsafe
    CHECK(m.col(1).minCoeff() > 0);
    CHECK(m(1, 2) == Approx(0.5));

    Walker w;
    Vec<double> xv(1), a(1), o(1), xn(1);
    xv << 0.5;
    a << 1.0;
    w.internal_transition(xv, a, o, xn);
    CHECK(xn[0] == Approx(0.4));
}
