#pragma once
/// @file kalman_filter.hpp
/// ExtendedKalmanFilter<Model>: a Gaussian belief N(x_hat, P) over the internal state x when
/// the policy cannot read x exactly (the seed's "Partial observability: maintain belief over x
/// with a filter (EKF/GRU)"; the GRU is models/state_estimator.hpp). The filter runs the
/// internal model f of any persist::InternalModel (the known dynamics of models/
/// known_dynamics.hpp, or a learned f_theta such as models::GaussianEnsemble, whose `predict`
/// is the mean) and, when the observation carries a noisy reading of x, corrects with it.
///
/// Predict (Jacobian F of f in x by central differences, one batched model call of 2X + 1
/// columns; Q = diag(process_std^2)):
///
///     x_hat^-     = f(x_hat_t, a_t, o_t)
///     F_{ij}      = (f_i(x_hat_t + h e_j, a_t, o_t) - f_i(x_hat_t - h e_j, a_t, o_t)) / (2 h)
///     P^-         = F P_t F^T + Q
///
/// Update, when `measurement_offset` >= 0 (z = o_{t+1}[offset, offset + X) = x_{t+1} + v,
/// v ~ N(0, R), R = diag(measurement_std^2), so H = I):
///
///     S = P^- + R,  K = P^- S^{-1},  x_hat_{t+1} = x_hat^- + K (z - x_hat^-)
///     P_{t+1} = (I - K) P^- (I - K)^T + K R K^T            (Joseph form: stays symmetric PSD)
///
/// otherwise x_hat_{t+1} = x_hat^-, P_{t+1} = P^- (prediction only: x is not observed at all).
/// Episode start: x_hat_0 = initial_mean, P_0 = diag(initial_std^2), corrected by o_0's reading
/// when there is one. With a linear f this is the Kalman filter exactly (Kalman 1960); the
/// extended filter linearises f around x_hat (e.g. Thrun, Burgard & Fox, Probabilistic
/// Robotics, 2005, table 3.3). Nothing is learned (the model is trained elsewhere, or known);
/// the belief (x_hat, P) is the state a checkpoint holds. No allocation after construction.
/// docs/models.md, "State estimators".
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Cholesky>
#include <nlohmann/json.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/random.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::models {

struct KalmanFilterOptions {
    /// x_0's mean (one entry per internal variable; required).
    std::vector<double> initial_mean;
    /// x_0's standard deviation per variable (one entry, or one per variable), >= 0. GridLife's
    /// x_0 = centre + U[-n, n] has std n / sqrt(3).
    std::vector<double> initial_std{0.0};
    /// Standard deviation of the model's error per step (Q = diag(process_std^2)), >= 0; one
    /// entry or one per variable. 0 with the known dynamics: f is exact.
    std::vector<double> process_std{0.0};
    /// Where o holds a reading of x (o[offset .. offset + X)), or -1 when it holds none (x hidden).
    Index measurement_offset = -1;
    /// The reading's noise std per variable (R = diag(measurement_std^2)), > 0; one entry or one
    /// per variable. Used only with measurement_offset >= 0.
    std::vector<double> measurement_std{0.05};
    /// Central-difference step h of the Jacobian, in x's units, > 0.
    double jacobian_step = 1e-3;
};

/// @tparam M a persist::InternalModel (predict(x, a, o, x_next) over columns); a model whose
///           predict is not const (a learned ensemble) is called through a non-const reference.
template <class M>
    requires InternalModel<M>
class ExtendedKalmanFilter {
public:
    using scalar_type = scalar_of<M>;
    using T = scalar_type;
    using model_type = M;

    /// `obs_dim`: the observation's size (the model's `o` and the filter's input).
    ExtendedKalmanFilter(M model, Index obs_dim, KalmanFilterOptions o)
        : model_(std::move(model)), O_(obs_dim), X_(static_cast<Index>(model_.internal_dim())),
          A_(static_cast<Index>(model_.action_dim())), opt_(std::move(o)) {
        validate();
        const auto pick = [](const std::vector<double>& v, Index j) {
            return v.size() == 1 ? v[0] : v[static_cast<std::size_t>(j)];
        };
        mean0_.resize(X_);
        var0_.resize(X_);
        q_.resize(X_);
        r_.resize(X_);
        for (Index j = 0; j < X_; ++j) {
            mean0_[j] = static_cast<T>(opt_.initial_mean[static_cast<std::size_t>(j)]);
            var0_[j] = static_cast<T>(pick(opt_.initial_std, j) * pick(opt_.initial_std, j));
            q_[j] = static_cast<T>(pick(opt_.process_std, j) * pick(opt_.process_std, j));
            r_[j] = measuring() ? static_cast<T>(pick(opt_.measurement_std, j) * pick(opt_.measurement_std, j)) : T(0);
        }
        const Index C = 2 * X_ + 1;
        xs_.setZero(X_, C);
        as_.setZero(A_, C);
        os_.setZero(O_, C);
        fx_.setZero(X_, C);
        F_.setZero(X_, X_);
        P_.setZero(X_, X_);
        Pm_.setZero(X_, X_);
        S_.setZero(X_, X_);
        K_.setZero(X_, X_);
        IK_.setZero(X_, X_);
        tmp_.setZero(X_, X_);
        innov_.setZero(X_);
        x_hat_ = mean0_;
        P_ = var0_.asDiagonal();
        llt_.compute(Mat<T>::Identity(X_, X_));  // sizes llt_'s storage once
    }

    const KalmanFilterOptions& options() const noexcept { return opt_; }
    Index obs_dim() const noexcept { return O_; }
    Index state_dim() const noexcept { return X_; }
    const M& model() const noexcept { return model_; }
    bool measuring() const noexcept { return opt_.measurement_offset >= 0; }

    /// Episode start: the prior N(initial_mean, diag(initial_std^2)), corrected by o_0's reading
    /// of x when the observation has one. Returns x_hat_0 (valid until the next call).
    const Vec<T>& begin_episode(VecCRef<T> o0) {
        check_obs("begin_episode: o_0", o0);
        x_hat_ = mean0_;
        P_.setZero();
        P_.diagonal() = var0_;
        if (measuring()) correct(o0);
        return x_hat_;
    }

    /// One step: predict through f with (o_t, a_t), then correct with o_{t+1}'s reading of x.
    /// Returns x_hat_{t+1}.
    const Vec<T>& step(VecCRef<T> o, VecCRef<T> a, VecCRef<T> o_next) {
        check_obs("step: o_t", o);
        check_obs("step: o_{t+1}", o_next);
        if (a.size() != A_) persist::detail::throw_shape("ExtendedKalmanFilter::step: a", A_, 1, a.size(), 1);
        predict(o, a);
        if (measuring()) correct(o_next);
        return x_hat_;
    }

    const Vec<T>& estimate() const noexcept { return x_hat_; }
    /// P, the belief's covariance (X x X, symmetric positive semi-definite).
    const Mat<T>& covariance() const noexcept { return P_; }
    /// The last Jacobian F = df/dx at the previous estimate (X x X).
    const Mat<T>& jacobian() const noexcept { return F_; }

    /// What a checkpoint of an agent with this filter records about it (compared on load).
    nlohmann::json describe() const {
        return {{"type", "ekf"}, {"measurement_offset", static_cast<std::int64_t>(opt_.measurement_offset)}};
    }

    /// The belief (x_hat, P): a checkpoint taken mid-episode resumes the same filter.
    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("x_hat", x_hat_.data(), {X_}));
        v(state_tensor("covariance", P_.data(), {X_, X_}));
    }

private:
    void validate() const {
        const std::string w = "ExtendedKalmanFilter: KalmanFilterOptions.";
        if (X_ < 1) throw ConfigError("ExtendedKalmanFilter: the model has internal_dim 0");
        if (O_ < 1) throw ConfigError("ExtendedKalmanFilter: obs_dim " + std::to_string(O_) + ": expected >= 1");
        if (static_cast<Index>(opt_.initial_mean.size()) != X_)
            throw ConfigError(w + "initial_mean: expected " + std::to_string(X_) + " entries (one per internal "
                              "variable), got " + std::to_string(opt_.initial_mean.size()));
        for (std::size_t j = 0; j < opt_.initial_mean.size(); ++j)
            if (!std::isfinite(opt_.initial_mean[j]))
                throw ConfigError(w + "initial_mean[" + std::to_string(j) + "]: expected a finite number");
        check_vec("initial_std", opt_.initial_std, false);
        check_vec("process_std", opt_.process_std, false);
        if (opt_.measurement_offset < -1 || (opt_.measurement_offset >= 0 && opt_.measurement_offset + X_ > O_))
            throw ConfigError(w + "measurement_offset: " + std::to_string(opt_.measurement_offset) +
                              ": expected -1 (x not observed) or an offset in [0, " + std::to_string(O_ - X_) +
                              "] (x's " + std::to_string(X_) + " entries inside the " + std::to_string(O_) +
                              "-entry observation)");
        if (measuring()) check_vec("measurement_std", opt_.measurement_std, true);
        if (!(std::isfinite(opt_.jacobian_step) && opt_.jacobian_step > 0))
            throw ConfigError(w + "jacobian_step: expected a finite number > 0, got " + std::to_string(opt_.jacobian_step));
    }
    void check_vec(const char* name, const std::vector<double>& v, bool positive) const {
        const std::string w = std::string("ExtendedKalmanFilter: KalmanFilterOptions.") + name;
        if (v.size() != 1 && static_cast<Index>(v.size()) != X_)
            throw ConfigError(w + ": expected 1 or " + std::to_string(X_) + " entries, got " + std::to_string(v.size()));
        for (std::size_t j = 0; j < v.size(); ++j)
            if (!std::isfinite(v[j]) || v[j] < 0 || (positive && v[j] == 0))
                throw ConfigError(w + "[" + std::to_string(j) + "]: expected a finite number " +
                                  (positive ? "> 0" : ">= 0") + ", got " + std::to_string(v[j]));
    }
    void check_obs(const char* what, VecCRef<T> o) const {
        if (o.size() != O_)
            persist::detail::throw_shape(std::string("ExtendedKalmanFilter::") + what, O_, 1, o.size(), 1);
    }

    void predict(VecCRef<T> o, VecCRef<T> a) {
        const T h = static_cast<T>(opt_.jacobian_step);
        xs_.colwise() = x_hat_;
        for (Index j = 0; j < X_; ++j) {
            xs_(j, 1 + 2 * j) += h;
            xs_(j, 2 + 2 * j) -= h;
        }
        as_.colwise() = a;
        os_.colwise() = o;
        model_.predict(xs_, as_, os_, fx_);
        for (Index j = 0; j < X_; ++j) F_.col(j) = (fx_.col(1 + 2 * j) - fx_.col(2 + 2 * j)) / (T(2) * h);
        if (!fx_.allFinite())
            throw Error("ExtendedKalmanFilter::step: the model's prediction f(x_hat +- h e_j, a, o) is not finite");
        x_hat_ = fx_.col(0);
        tmp_.noalias() = F_ * P_;
        Pm_.noalias() = tmp_ * F_.transpose();
        Pm_.diagonal() += q_;
        P_ = T(0.5) * (Pm_ + Pm_.transpose());
    }

    void correct(VecCRef<T> o) {
        innov_ = o.segment(opt_.measurement_offset, X_) - x_hat_;
        if (!innov_.allFinite())
            throw Error("ExtendedKalmanFilter: the reading of x at o[" + std::to_string(opt_.measurement_offset) +
                        ", " + std::to_string(opt_.measurement_offset + X_) + ") or the estimate is not finite");
        S_ = P_;
        S_.diagonal() += r_;
        llt_.compute(S_);
        if (llt_.info() != Eigen::Success)
            throw Error("ExtendedKalmanFilter::step: the innovation covariance P + R is not positive definite (a non-finite estimate or reading)");
        // K = P S^{-1} = (S^{-1} P)^T, S and P symmetric.
        tmp_ = P_;
        llt_.solveInPlace(tmp_);
        K_ = tmp_.transpose();
        x_hat_.noalias() += K_ * innov_;
        IK_ = -K_;
        IK_.diagonal().array() += T(1);
        tmp_.noalias() = IK_ * P_;
        Pm_.noalias() = tmp_ * IK_.transpose();
        tmp_.noalias() = K_ * r_.asDiagonal();
        Pm_.noalias() += tmp_ * K_.transpose();
        P_ = T(0.5) * (Pm_ + Pm_.transpose());
    }

    M model_;
    Index O_, X_, A_;
    KalmanFilterOptions opt_;
    Vec<T> mean0_, var0_, q_, r_;
    Vec<T> x_hat_, innov_;
    Mat<T> xs_, as_, os_, fx_;
    Mat<T> F_, P_, Pm_, S_, K_, IK_, tmp_;
    Eigen::LLT<Mat<T>> llt_;
};

}  // namespace persist::models
