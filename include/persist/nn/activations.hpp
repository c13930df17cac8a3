#pragma once
/// @file activations.hpp
/// Parameter-free pointwise layers: ReLU, Tanh, ELU, SiLU, Sigmoid (layer contract:
/// nn/layer.hpp). Derivatives are taken from the saved output where possible, and backward may
/// run in place (grad_in may alias grad_out), which MLP uses to save a buffer.
#include <cmath>
#include <string>

#include "persist/nn/layer.hpp"

namespace persist::nn {
namespace detail {

struct PointwiseCache {};

/// Shared plumbing of pointwise layers; Derived supplies `kName`, `apply(in, out)` and
/// `derive(in, out, grad_out, grad_in)` on same-shaped matrices.
template <class Derived, class T>
class Pointwise {
public:
    using scalar_type = T;
    using Cache = PointwiseCache;  // one empty type for every pointwise layer

    /// dim = 0: any width (a Sequential sets it from the previous layer).
    explicit Pointwise(Index dim = 0) : dim_(dim) {}
    Index in_dim() const { return dim_; }
    Index out_dim() const { return dim_; }
    Index param_count() const { return 0; }
    void set_dim(Index d) { dim_ = d; }
    void bind(T*, T*) {}
    void init(Rng&, const Init&) {}
    std::string name() const { return std::string(Derived::kName) + "(" + std::to_string(dim_) + ")"; }

    void forward(MatCRef<T> in, Mat<T>& out, Cache&) const {
        if (dim_ != 0)
            check_shape([this] { return name(); }, "forward input", dim_, in.cols(), in.rows(),
                        in.cols());
        ensure_shape(out, in.rows(), in.cols());
        static_cast<const Derived&>(*this).apply(in, out);
    }
    void backward(MatCRef<T> in, MatCRef<T> out, MatCRef<T> grad_out, Mat<T>* grad_in, Cache&,
                  bool) {
        if (!grad_in) return;
        check_shape([this] { return name(); }, "backward grad_out", out.rows(), out.cols(),
                    grad_out.rows(), grad_out.cols());
        ensure_shape(*grad_in, out.rows(), out.cols());
        static_cast<const Derived&>(*this).derive(in, out, grad_out, *grad_in);
    }

protected:
    /// d(i, j) = f(a(i, j), b(i, j), c(i, j)) column by column: plain loops the compiler
    /// vectorises (Eigen 3.4's select() is not vectorised).
    template <class F>
    static void zip(MatCRef<T> a, MatCRef<T> b, MatCRef<T> c, Mat<T>& d, F f) {
        const Index r = d.rows();
        for (Index j = 0; j < d.cols(); ++j) {
            const T* pa = a.data() + j * a.outerStride();
            const T* pb = b.data() + j * b.outerStride();
            const T* pc = c.data() + j * c.outerStride();
            T* pd = d.data() + j * r;
            for (Index i = 0; i < r; ++i) pd[i] = f(pa[i], pb[i], pc[i]);
        }
    }

private:
    Index dim_;
};

}  // namespace detail

/// y = max(x, 0); dy/dx = 1[y > 0] (0 at the kink).
template <class T>
class ReLU : public detail::Pointwise<ReLU<T>, T> {
public:
    using detail::Pointwise<ReLU<T>, T>::Pointwise;
    static constexpr const char* kName = "ReLU";
    void apply(MatCRef<T> x, Mat<T>& y) const { y.array() = x.array().max(T(0)); }
    void derive(MatCRef<T> x, MatCRef<T> y, MatCRef<T> g, Mat<T>& d) const {
        this->zip(x, y, g, d, [](T, T yi, T gi) { return yi > T(0) ? gi : T(0); });
    }
};

/// y = tanh(x); dy/dx = 1 - y^2.
template <class T>
class Tanh : public detail::Pointwise<Tanh<T>, T> {
public:
    using detail::Pointwise<Tanh<T>, T>::Pointwise;
    static constexpr const char* kName = "Tanh";
    void apply(MatCRef<T> x, Mat<T>& y) const { y.array() = x.array().tanh(); }
    void derive(MatCRef<T>, MatCRef<T> y, MatCRef<T> g, Mat<T>& d) const {
        d.array() = g.array() * (T(1) - y.array().square());
    }
};

/// y = 1 / (1 + exp(-x)); dy/dx = y (1 - y).
template <class T>
class Sigmoid : public detail::Pointwise<Sigmoid<T>, T> {
public:
    using detail::Pointwise<Sigmoid<T>, T>::Pointwise;
    static constexpr const char* kName = "Sigmoid";
    void apply(MatCRef<T> x, Mat<T>& y) const { y.array() = x.array().logistic(); }
    void derive(MatCRef<T>, MatCRef<T> y, MatCRef<T> g, Mat<T>& d) const {
        d.array() = g.array() * y.array() * (T(1) - y.array());
    }
};

/// y = x sigmoid(x) (SiLU / swish, Elfwing et al. 2018; Ramachandran et al. 2017);
/// dy/dx = s + y (1 - s) with s = sigmoid(x).
template <class T>
class SiLU : public detail::Pointwise<SiLU<T>, T> {
public:
    using detail::Pointwise<SiLU<T>, T>::Pointwise;
    static constexpr const char* kName = "SiLU";
    void apply(MatCRef<T> x, Mat<T>& y) const { y.array() = x.array() * x.array().logistic(); }
    void derive(MatCRef<T> x, MatCRef<T> y, MatCRef<T> g, Mat<T>& d) const {
        d.array() = g.array() * (x.array().logistic() +
                                 y.array() * (T(1) - x.array().logistic()));
    }
};

/// y = x for x > 0, alpha (exp(x) - 1) otherwise (Clevert et al. 2016); dy/dx = 1 or y + alpha.
template <class T>
class ELU : public detail::Pointwise<ELU<T>, T> {
    using Base = detail::Pointwise<ELU<T>, T>;

public:
    static constexpr const char* kName = "ELU";
    explicit ELU(Index dim = 0, T alpha = T(1)) : Base(dim), alpha_(alpha) {}
    T alpha() const { return alpha_; }
    void apply(MatCRef<T> x, Mat<T>& y) const {
        const T a = alpha_;
        this->zip(x, x, x, y, [a](T xi, T, T) { return xi > T(0) ? xi : a * std::expm1(xi); });
    }
    void derive(MatCRef<T> x, MatCRef<T> y, MatCRef<T> g, Mat<T>& d) const {
        const T a = alpha_;
        this->zip(x, y, g, d, [a](T xi, T yi, T gi) { return xi > T(0) ? gi : gi * (yi + a); });
    }

private:
    T alpha_;
};

}  // namespace persist::nn
