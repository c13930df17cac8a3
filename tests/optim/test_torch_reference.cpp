// Step-by-step agreement with real PyTorch (torch.optim, lr_scheduler, clip_grad_norm_) on the
// fixture written by tests/optim/reference/make_torch_reference.py (float64 trajectories).
#include "optim/test_common.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "persist/optim/adam.hpp"
#include "persist/optim/clip.hpp"
#include "persist/optim/radam.hpp"
#include "persist/optim/rmsprop.hpp"
#include "persist/optim/schedule.hpp"
#include "persist/optim/sgd.hpp"

#ifndef PERSIST_OPTIM_REFERENCE_DIR
#error "PERSIST_OPTIM_REFERENCE_DIR must name tests/optim/reference (set by tests/CMakeLists.txt)"
#endif

using json = nlohmann::json;
using namespace persist;
using namespace persist::optim;
using persist_test::worst_ratio;

namespace {

const json& fixture() {
    static const json j = [] {
        const std::string path = std::string(PERSIST_OPTIM_REFERENCE_DIR) + "/torch_optim.json";
        std::ifstream in(path);
        if (!in) throw std::runtime_error("cannot open " + path);
        return json::parse(in);
    }();
    return j;
}

// Tolerances against a float64 torch trajectory. double: the same arithmetic up to operation
// order and FMA contraction. float: the whole run in single precision (measured worst case
// ~1e-5 relative over 200 steps; 20x margin).
template <class T>
struct Tol;
template <>
struct Tol<double> {
    static constexpr double rel = 1e-12, abs = 1e-14, lr_rel = 1e-13;
};
template <>
struct Tol<float> {
    static constexpr double rel = 2e-4, abs = 2e-5, lr_rel = 1e-6;
};

template <class T>
Vec<T> to_vec(const json& a) {
    Vec<T> v(static_cast<Index>(a.size()));
    for (std::size_t i = 0; i < a.size(); ++i) v[static_cast<Index>(i)] = static_cast<T>(a[i].get<double>());
    return v;
}

template <class T>
SGDOptions<T> sgd_options(const json& o) {
    SGDOptions<T> s;
    s.lr = static_cast<T>(o.at("lr").get<double>());
    s.momentum = static_cast<T>(o.value("momentum", 0.0));
    s.dampening = static_cast<T>(o.value("dampening", 0.0));
    s.weight_decay = static_cast<T>(o.value("weight_decay", 0.0));
    s.nesterov = o.value("nesterov", false);
    return s;
}

template <class Opts>
Opts adam_like_options(const json& o) {
    using T = decltype(Opts{}.lr);
    Opts s;
    s.lr = static_cast<T>(o.at("lr").get<double>());
    if (o.contains("betas")) {
        s.beta1 = static_cast<T>(o["betas"][0].get<double>());
        s.beta2 = static_cast<T>(o["betas"][1].get<double>());
    }
    if (o.contains("eps")) s.eps = static_cast<T>(o["eps"].get<double>());
    if (o.contains("weight_decay")) s.weight_decay = static_cast<T>(o["weight_decay"].get<double>());
    if constexpr (requires { s.amsgrad; }) s.amsgrad = o.value("amsgrad", false);
    return s;
}

template <class T>
RMSpropOptions<T> rmsprop_options(const json& o) {
    RMSpropOptions<T> s;
    s.lr = static_cast<T>(o.at("lr").get<double>());
    if (o.contains("alpha")) s.alpha = static_cast<T>(o["alpha"].get<double>());
    if (o.contains("eps")) s.eps = static_cast<T>(o["eps"].get<double>());
    s.weight_decay = static_cast<T>(o.value("weight_decay", 0.0));
    s.momentum = static_cast<T>(o.value("momentum", 0.0));
    s.centered = o.value("centered", false);
    return s;
}

/// Build the schedule a fixture entry describes and pass it to f.
template <class T, class F>
void with_schedule(const json& s, F&& f) {
    const std::string type = s.at("type");
    if (type == "CosineWarmRestarts") {
        CosineWarmRestarts<T> sch({.lr = static_cast<T>(s["lr"].get<double>()),
                                   .eta_min = static_cast<T>(s["eta_min"].get<double>()),
                                   .t0 = s["t0"].get<Index>(),
                                   .t_mult = s["t_mult"].get<Index>()});
        f(sch);
    } else if (type == "LinearWarmup") {
        LinearWarmup<T> sch({.lr = static_cast<T>(s["lr"].get<double>()),
                             .start_factor = static_cast<T>(s["start_factor"].get<double>()),
                             .warmup_steps = s["warmup_steps"].get<Index>()});
        f(sch);
    } else if (type == "WarmupCosine") {
        WarmupCosine<T> sch({.lr = static_cast<T>(s["lr"].get<double>()),
                             .start_factor = static_cast<T>(s["start_factor"].get<double>()),
                             .warmup_steps = s["warmup_steps"].get<Index>(),
                             .eta_min = static_cast<T>(s["eta_min"].get<double>()),
                             .t0 = s["t0"].get<Index>(),
                             .t_mult = s["t_mult"].get<Index>()});
        f(sch);
    } else {
        FAIL("unknown schedule type " << type);
    }
}

/// Runs the optimizer over the fixture's gradient sequence and compares every step's checksum
/// and the snapshots. `sched` (may be null) drives set_lr before each step.
template <class T, class Opt, class Sched>
void check_trajectory(const json& c, Opt& opt, Sched* sched) {
    const json& fx = fixture();
    const auto& grads = fx["grads"];
    const auto& snaps = fx["snapshot_steps"];
    Vec<T> p = to_vec<T>(fx["init"]);
    const Index n = p.size();
    std::size_t snap = 0;
    double worst_sum = 0.0, worst_snap = 0.0, worst_lr = 0.0;
    for (std::size_t t = 0; t < grads.size(); ++t) {
        const Vec<T> g = to_vec<T>(grads[t]);
        if (sched) {
            const T lr = sched->apply(opt);
            REQUIRE(opt.lr() == lr);
            const double ref = c["lrs"][t].get<double>();
            worst_lr = std::max(worst_lr, std::abs(static_cast<double>(lr) - ref) /
                                              (Tol<T>::lr_rel * std::abs(ref) + 1e-300));
        }
        {
            persist_test::NoEigenMalloc guard;
            opt.step(p, g);
        }
        if (sched) sched->advance();
        double s1 = 0.0, s2 = 0.0;
        for (Index i = 0; i < n; ++i) {
            const double x = static_cast<double>(p[i]);
            s1 += static_cast<double>(i + 1) * std::abs(x);
            s2 += x * x;
        }
        const Vec<double> mine = (Vec<double>(2) << s1, s2).finished();
        const Vec<double> ref = to_vec<double>(c["checksums"][t]);
        const double w = worst_ratio(mine, ref, Tol<T>::rel, Tol<T>::abs);
        worst_sum = std::max(worst_sum, w);
        if (w > 1.0) FAIL_CHECK("checksum differs at step " << t + 1 << ": " << s1 << ", " << s2);
        if (snap < snaps.size() && snaps[snap].get<std::size_t>() == t + 1) {
            const Vec<double> ref_p = to_vec<double>(c["snapshots"][snap]);
            const double ws = worst_ratio(p.template cast<double>().eval(), ref_p, Tol<T>::rel, Tol<T>::abs);
            worst_snap = std::max(worst_snap, ws);
            if (ws > 1.0) {
                FAIL_CHECK("params differ at step " << t + 1 << "\n  persist: " << p.transpose()
                                                     << "\n  torch:   " << ref_p.transpose());
            }
            ++snap;
        }
    }
    CHECK(snap == snaps.size());
    CHECK(worst_lr <= 1.0);
    INFO(c["name"].get<std::string>() << ": worst checksum ratio " << worst_sum << ", snapshot ratio "
                                      << worst_snap);
    CHECK(worst_sum <= 1.0);
    CHECK(worst_snap <= 1.0);
}

template <class T, class Opt>
void run_case(const json& c, Opt& opt) {
    if (c.contains("schedule")) {
        with_schedule<T>(c["schedule"], [&](auto& sch) { check_trajectory<T>(c, opt, &sch); });
    } else {
        check_trajectory<T>(c, opt, static_cast<ConstantLr<T>*>(nullptr));
    }
}

template <class T>
void run_cases_of(const std::string& optimizer) {
    const json& fx = fixture();
    const Index n = fx["n_params"].get<Index>();
    int count = 0;
    for (const auto& c : fx["cases"]) {
        if (c["optimizer"] != optimizer) continue;
        ++count;
        DYNAMIC_SECTION(c["name"].get<std::string>()) {
            const json& o = c["options"];
            if (optimizer == "SGD") {
                SGD<T> opt(n, sgd_options<T>(o));
                run_case<T>(c, opt);
            } else if (optimizer == "Adam") {
                Adam<T> opt(n, adam_like_options<AdamOptions<T>>(o));
                run_case<T>(c, opt);
            } else if (optimizer == "AdamW") {
                AdamW<T> opt(n, adam_like_options<AdamWOptions<T>>(o));
                run_case<T>(c, opt);
            } else if (optimizer == "RAdam") {
                RAdam<T> opt(n, adam_like_options<RAdamOptions<T>>(o));
                run_case<T>(c, opt);
            } else if (optimizer == "RMSprop") {
                RMSprop<T> opt(n, rmsprop_options<T>(o));
                run_case<T>(c, opt);
            }
        }
    }
    CHECK(count >= 2);
}

}  // namespace

TEMPLATE_TEST_CASE("SGD (plain, momentum, dampening, Nesterov, weight decay) matches torch.optim.SGD",
                   "[optim][torch][sgd]", float, double) {
    run_cases_of<TestType>("SGD");
}

TEMPLATE_TEST_CASE("Adam (with L2 decay, amsgrad) matches torch.optim.Adam", "[optim][torch][adam]",
                   float, double) {
    run_cases_of<TestType>("Adam");
}

TEMPLATE_TEST_CASE("AdamW (decoupled decay, amsgrad, warm-up + cosine) matches torch.optim.AdamW",
                   "[optim][torch][adamw]", float, double) {
    run_cases_of<TestType>("AdamW");
}

TEMPLATE_TEST_CASE("RAdam matches torch.optim.RAdam", "[optim][torch][radam]", float, double) {
    run_cases_of<TestType>("RAdam");
}

TEMPLATE_TEST_CASE("RMSprop (plain, centered, momentum) matches torch.optim.RMSprop",
                   "[optim][torch][rmsprop]", float, double) {
    run_cases_of<TestType>("RMSprop");
}

TEMPLATE_TEST_CASE("Schedules match torch lr_scheduler formulas", "[optim][torch][schedule]", float,
                   double) {
    using T = TestType;
    for (const auto& s : fixture()["schedules"]) {
        DYNAMIC_SECTION(s["name"].get<std::string>()) {
            with_schedule<T>(s["schedule"], [&](auto& sch) {
                const auto& lrs = s["lrs"];
                for (std::size_t t = 0; t < lrs.size(); ++t) {
                    const double ref = lrs[t].get<double>();
                    INFO("step " << t);
                    CHECK(persist_test::close(static_cast<double>(sch.lr()), ref, Tol<T>::lr_rel, 0.0));
                    CHECK(static_cast<double>(sch.lr_at(static_cast<Index>(t))) ==
                          static_cast<double>(sch.lr()));
                    sch.advance();
                }
                // restart() starts over: the same sequence again from step 0.
                sch.restart();
                CHECK(sch.step_count() == 0);
                for (std::size_t t = 0; t < lrs.size(); ++t) {
                    CHECK(persist_test::close(static_cast<double>(sch.lr()), lrs[t].get<double>(),
                                              Tol<T>::lr_rel, 0.0));
                    sch.advance();
                }
            });
        }
    }
}

TEMPLATE_TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_", "[optim][torch][clip]",
                   float, double) {
    using T = TestType;
    int k = 0;
    for (const auto& c : fixture()["clip"]) {
        DYNAMIC_SECTION("case " << k++) {
            Vec<T> g = to_vec<T>(c["grads"]);
            const Vec<T> g0 = g;
            const T norm_type = c["norm_type"] == "inf" ? std::numeric_limits<T>::infinity()
                                                        : static_cast<T>(c["norm_type"].get<double>());
            const T max_norm = static_cast<T>(c["max_norm"].get<double>());
            CHECK(persist_test::close(static_cast<double>(grad_norm(g, norm_type)),
                                      c["total_norm"].get<double>(), Tol<T>::rel, Tol<T>::abs));
            T total;
            {
                persist_test::NoEigenMalloc guard;
                total = clip_grad_norm(g, max_norm, norm_type);
            }
            CHECK(persist_test::close(static_cast<double>(total), c["total_norm"].get<double>(),
                                      Tol<T>::rel, Tol<T>::abs));
            CHECK(worst_ratio(g.template cast<double>().eval(), to_vec<double>(c["clipped"]),
                              Tol<T>::rel, Tol<T>::abs) <= 1.0);
            // The clipped norm is at most max_norm; an unclipped gradient is untouched.
            CHECK(static_cast<double>(grad_norm(g, norm_type)) <= static_cast<double>(max_norm) * (1 + 1e-6));
            if (total + T(1e-6) <= max_norm) CHECK(g == g0);
        }
    }
}
