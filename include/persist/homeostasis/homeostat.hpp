#pragma once
/// @file homeostat.hpp
/// The quadratic homeostatic drive of the seed (sections 1 and 7):
///
///     R_homeo(x) = -sum_j w_j (x_j - mu_j)^2,     grad R_homeo(x) = -2 w .* (x - mu)
///
/// with setpoints mu and non-negative weights w, one per internal variable (energy,
/// temperature, integrity, ...). Batches follow the library convention: one column per state.
/// Setpoints and weights can be changed at run time (adaptive setpoints, curriculum on w) and
/// are exposed through the state protocol, so a checkpoint restores the drive exactly.
/// docs/homeostasis.md has the parameter table and an example.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::homeostasis {

/// A writable view of a row vector that may also be a row of a column-major matrix
/// (`m.row(k)`), so batched per-sample scalars can be written in place.
template <class T>
using RowVecRef = Eigen::Ref<RowVec<T>, 0, Eigen::InnerStride<>>;

/// R(x) = -sum_j w_j (x_j - mu_j)^2. Models persist::Homeostat and persist::Stateful.
template <class T>
class Homeostat {
public:
    using scalar_type = T;

    /// `mu` (setpoints) and `w` (weights, finite and >= 0) of the same size; `names` is empty or
    /// one unique, non-empty name per dimension (used in messages and for `index_of`).
    /// Throws persist::ConfigError naming the offending index and value.
    Homeostat(Vec<T> mu, Vec<T> w, std::vector<std::string> names = {})
        : mu_(std::move(mu)), w_(std::move(w)), names_(std::move(names)) {
        if (mu_.size() != w_.size())
            throw ConfigError("Homeostat: mu and w must have the same size, got " +
                              std::to_string(mu_.size()) + " and " + std::to_string(w_.size()));
        check_mu(mu_, "Homeostat");
        check_w(w_, "Homeostat");
        if (!names_.empty()) {
            if (static_cast<Index>(names_.size()) != mu_.size())
                throw ConfigError("Homeostat: names must be empty or have one entry per dimension (" +
                                  std::to_string(mu_.size()) + "), got " + std::to_string(names_.size()));
            for (std::size_t j = 0; j < names_.size(); ++j) {
                if (names_[j].empty())
                    throw ConfigError("Homeostat: names[" + std::to_string(j) + "] is empty");
                for (std::size_t i = 0; i < j; ++i)
                    if (names_[i] == names_[j])
                        throw ConfigError("Homeostat: names[" + std::to_string(j) + "] = \"" + names_[j] +
                                          "\" repeats names[" + std::to_string(i) + "]");
            }
        }
    }

    /// Number of internal variables.
    Index dim() const { return mu_.size(); }

    /// R(x) for one state (x.size() == dim(), else persist::ShapeError).
    T reward(VecCRef<T> x) const {
        check_x(x.rows(), 1, "Homeostat::reward: x");
        return -(w_.array() * (x - mu_).array().square()).sum();
    }

    /// grad R(x) = -2 w .* (x - mu), written into `grad` (size dim()).
    void gradient(VecCRef<T> x, VecRef<T> grad) const {
        check_x(x.rows(), 1, "Homeostat::gradient: x");
        if (grad.size() != dim()) detail::throw_shape("Homeostat::gradient: grad", dim(), 1, grad.size(), 1);
        grad.array() = T(-2) * w_.array() * (x - mu_).array();
    }

    /// R over a batch: out(b) = R(x.col(b)); x is dim x B, out is 1 x B (a RowVec or a row of
    /// a matrix). Never allocates.
    void rewards(MatCRef<T> x, RowVecRef<T> out) const {
        check_x(x.rows(), x.cols(), "Homeostat::rewards: x");
        if (out.cols() != x.cols()) detail::throw_shape("Homeostat::rewards: out", 1, x.cols(), 1, out.cols());
        for (Index b = 0; b < x.cols(); ++b)
            out(b) = -(w_.array() * (x.col(b) - mu_).array().square()).sum();
    }

    /// Gradients over a batch: g.col(b) = grad R(x.col(b)); x and g are dim x B.
    void gradients(MatCRef<T> x, MatRef<T> g) const {
        check_x(x.rows(), x.cols(), "Homeostat::gradients: x");
        if (g.rows() != x.rows() || g.cols() != x.cols())
            detail::throw_shape("Homeostat::gradients: g", x.rows(), x.cols(), g.rows(), g.cols());
        g.array() = (x.colwise() - mu_).array().colwise() * (T(-2) * w_.array());
    }

    /// Per-variable terms -w_j (x_j - mu_j)^2 of one state (they sum to reward(x)); for
    /// metrics that report which variable costs most.
    void terms(VecCRef<T> x, VecRef<T> out) const {
        check_x(x.rows(), 1, "Homeostat::terms: x");
        if (out.size() != dim()) detail::throw_shape("Homeostat::terms: out", dim(), 1, out.size(), 1);
        out.array() = -w_.array() * (x - mu_).array().square();
    }

    const Vec<T>& setpoints() const { return mu_; }
    const Vec<T>& weights() const { return w_; }
    const std::vector<std::string>& names() const { return names_; }

    /// Replace the setpoints (adaptive setpoints). Same size and finite, else ShapeError /
    /// ConfigError; the object is unchanged on error.
    void set_setpoints(VecCRef<T> mu) {
        if (mu.size() != dim()) detail::throw_shape("Homeostat::set_setpoints: mu", dim(), 1, mu.size(), 1);
        check_mu(mu, "Homeostat::set_setpoints");
        mu_ = mu;
    }
    /// Replace the weights (finite and >= 0).
    void set_weights(VecCRef<T> w) {
        if (w.size() != dim()) detail::throw_shape("Homeostat::set_weights: w", dim(), 1, w.size(), 1);
        check_w(w, "Homeostat::set_weights");
        w_ = w;
    }
    /// Set one setpoint by index (0 <= j < dim()).
    void set_setpoint(Index j, T mu_j) {
        check_index(j, "Homeostat::set_setpoint");
        if (!std::isfinite(mu_j))
            throw ConfigError("Homeostat::set_setpoint: mu[" + std::to_string(j) + "]" + label(j) +
                              " must be finite, got " + num(mu_j));
        mu_(j) = mu_j;
    }

    /// Index of the variable called `name`; ConfigError listing the known names otherwise.
    Index index_of(std::string_view name) const {
        for (std::size_t j = 0; j < names_.size(); ++j)
            if (names_[j] == name) return static_cast<Index>(j);
        std::string known;
        for (const auto& n : names_) known += (known.empty() ? "" : ", ") + n;
        throw ConfigError("Homeostat: unknown variable \"" + std::string(name) + "\" (known: " +
                          (known.empty() ? std::string("none, no names given") : known) + ")");
    }

    /// State protocol: "mu" and "w" (both [dim]).
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("mu", mu_.data(), {static_cast<std::int64_t>(mu_.size())}));
        v(state_tensor("w", w_.data(), {static_cast<std::int64_t>(w_.size())}));
    }

private:
    static std::string num(T v) {
        std::ostringstream os;
        os.precision(17);
        os << static_cast<double>(v);
        return os.str();
    }
    std::string label(Index j) const {
        return names_.empty() ? std::string() : " (\"" + names_[static_cast<std::size_t>(j)] + "\")";
    }
    void check_mu(const VecCRef<T>& mu, const char* who) const {
        for (Index j = 0; j < mu.size(); ++j)
            if (!std::isfinite(mu(j)))
                throw ConfigError(std::string(who) + ": mu[" + std::to_string(j) + "]" + label_if(j, mu.size()) +
                                  " must be finite, got " + num(mu(j)));
    }
    void check_w(const VecCRef<T>& w, const char* who) const {
        for (Index j = 0; j < w.size(); ++j)
            if (!(std::isfinite(w(j)) && w(j) >= T(0)))
                throw ConfigError(std::string(who) + ": w[" + std::to_string(j) + "]" + label_if(j, w.size()) +
                                  " must be finite and >= 0, got " + num(w(j)));
    }
    // Names are validated after mu/w in the constructor; only use them when they fit.
    std::string label_if(Index j, Index n) const {
        return static_cast<Index>(names_.size()) == n ? label(j) : std::string();
    }
    void check_x(Index rows, Index cols, const char* where) const {
        if (rows != dim()) detail::throw_shape(where, dim(), cols, rows, cols);
    }
    void check_index(Index j, const char* who) const {
        if (j < 0 || j >= dim())
            throw ConfigError(std::string(who) + ": index " + std::to_string(j) + " out of range [0, " +
                              std::to_string(dim()) + ")");
    }

    Vec<T> mu_, w_;
    std::vector<std::string> names_;
};

}  // namespace persist::homeostasis
