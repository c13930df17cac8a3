#pragma once
/// @file sam.hpp
/// Sharpness-Aware Minimization (Foret, Kleiner, Mobahi & Neyshabur 2021, "Sharpness-Aware
/// Minimization for Efficiently Improving Generalization", Algorithm 1 with p = 2) around any
/// inner optimizer. SAM needs a second gradient at the perturbed weights, so its step takes a
/// gradient closure and SAM<> is deliberately not an Optimizer.
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

/// A gradient closure: `f(VecCRef<T>& params, VecRef<T>& grads_out)` writes grad L(params).
/// (A constraint rather than a static_assert, so that SAM<> is visibly not an Optimizer; Eigen
/// objects are excluded because their operator()(rows, cols) slicing accepts any two arguments.)
template <class F, class T>
concept GradientClosure =
    std::invocable<F&, VecCRef<T>&, VecRef<T>&> &&
    !std::is_base_of_v<Eigen::EigenBase<std::remove_cvref_t<F>>, std::remove_cvref_t<F>>;

template <class T>
struct SAMOptions {
    T rho = T(0.05);  ///< radius of the neighbourhood, >= 0 (0 = the inner optimizer alone)
};

/// SAM<Inner>. Per step, with g = grad L(w):
///   e = rho g / ||g||_2  (e = 0 when g = 0),   g_sam = grad L(w + e)   (eq. 2 / Algorithm 1),
///   inner.step(w, g_sam)   (the update starts from w, not from w + e).
/// The closure is called once per step as `grad_fn(VecCRef<T> w_plus_e, VecRef<T> grads_out)`
/// (any callable accepting those two lvalues): `w_plus_e` is the caller's own parameter buffer,
/// temporarily perturbed, so a network holding views into that buffer evaluates at w + e;
/// it must write grad L(w + e) into `grads_out` and must not keep either reference. The buffer
/// is restored to w exactly (a saved copy, not w + e - e) before the inner step.
/// @tparam Inner any type satisfying persist::optim::Optimizer, held by value (`inner()`).
template <class Inner>
class SAM {
    static_assert(OptimizerWithLr<Inner>,
                  "persist::optim::SAM<Inner>: Inner must satisfy persist::optim::OptimizerWithLr "
                  "(scalar_type, size, step, reset, set_lr, lr, visit_state; see docs/optim.md)");

public:
    using scalar_type = typename Inner::scalar_type;
    using T = scalar_type;
    using Options = SAMOptions<T>;

    explicit SAM(Inner inner, const Options& options = {}) : inner_(std::move(inner)), opt_(options) {
        validate(opt_);
        const Index n = inner_.size();
        w_.setZero(n);
        g_.setZero(n);
        g_sam_.setZero(n);
    }

    static void validate(const Options& o) {
        detail::require(detail::finite_nonneg(o.rho), "SAM", "rho", "finite and >= 0", o.rho);
    }

    Index size() const { return inner_.size(); }
    const Options& options() const { return opt_; }
    Inner& inner() { return inner_; }
    const Inner& inner() const { return inner_; }

    /// One SAM step from a gradient `grads` = grad L(params) the caller already has.
    /// grad_fn must be callable as grad_fn(VecCRef<T>& params, VecRef<T>& grads_out).
    template <class GradFn>
        requires GradientClosure<GradFn, T>
    void step(VecRef<T> params, VecCRef<T> grads, GradFn&& grad_fn) {
        detail::check_step("SAM", size(), params, grads);
        const T norm = grads.norm();
        w_ = params;
        if (norm > T(0)) params += (opt_.rho / norm) * grads;
        {
            VecCRef<T> w_plus_e(params);
            VecRef<T> out(g_sam_);
            grad_fn(w_plus_e, out);
        }
        params = w_;
        inner_.step(params, g_sam_);
    }

    /// One SAM step that first evaluates grad L(params) with the same closure (two calls).
    template <class GradFn>
        requires GradientClosure<GradFn, T>
    void step(VecRef<T> params, GradFn&& grad_fn) {
        detail::check_size("SAM", "params", size(), params.size());
        {
            VecCRef<T> w(params);
            VecRef<T> out(g_);
            grad_fn(w, out);
        }
        step(params, g_, grad_fn);
    }

    /// The neighbourhood radius can follow a schedule too: with a constant rho the iterates
    /// settle at a distance O(rho) from a minimum rather than on it.
    void set_rho(T rho) {
        detail::require(detail::finite_nonneg(rho), "SAM", "rho", "finite and >= 0", rho);
        opt_.rho = rho;
    }
    T rho() const { return opt_.rho; }

    /// The gradient at w + e used by the last step (for logging).
    const Vec<T>& last_sam_gradient() const { return g_sam_; }

    /// SAM itself has no state between steps; this resets the inner optimizer.
    void reset() { inner_.reset(); }
    void set_lr(T lr) { inner_.set_lr(lr); }
    T lr() const { return inner_.lr(); }

    template <class V>
    void visit_state(V&& v) {
        visit_nested(inner_, "inner", v);
    }

private:
    Inner inner_;
    Options opt_;
    Vec<T> w_, g_, g_sam_;  // workspace, not state
};

}  // namespace persist::optim
