#pragma once
/// @file views.hpp
/// Plain views of trained models for batched rollout kernels (Thrust functors on the CPU
/// backends and under nvcc). A view is raw pointers plus sizes, trivially copyable, with no
/// Eigen or xtensor inside, so a `__host__ __device__` functor can capture it by value. The
/// pointers refer to memory owned by the model (host) or to a device copy of it; a view never
/// owns anything and is invalidated when the model's parameters are reallocated (never during
/// training: nn::MLP never resizes its flat vectors).
#include <cstdint>

namespace persist::parallel {

/// Hidden-layer activation of an MLPView (the output layer is always linear).
enum class Activation : std::int32_t { relu = 0, tanh = 1 };

/// Maximum number of Linear layers of an MLPView and of members of an ensemble view.
inline constexpr int max_view_layers = 8;
inline constexpr int max_view_members = 16;

/// An MLP's flat parameter vector laid out exactly as nn::MLP (without LayerNorm) lays it out:
/// for each Linear layer l = 0 .. num_layers-1, W_l (widths[l+1] x widths[l], column-major),
/// then b_l (widths[l+1]). Hidden layers are followed by `act`, the last layer is linear.
template <class T>
struct MLPView {
    const T* params = nullptr;
    std::int32_t num_layers = 0;                 ///< Linear layers, [1, max_view_layers]
    std::int32_t widths[max_view_layers + 1] = {};  ///< widths[0] = in, widths[num_layers] = out
    Activation act = Activation::relu;

    constexpr std::int32_t in_dim() const { return widths[0]; }
    constexpr std::int32_t out_dim() const { return widths[num_layers]; }
    /// Largest layer width (scratch a single-sample evaluation needs: 2 x this).
    constexpr std::int32_t max_width() const {
        std::int32_t m = 0;
        for (std::int32_t l = 0; l <= num_layers; ++l) m = widths[l] > m ? widths[l] : m;
        return m;
    }
};

/// A probabilistic ensemble internal model f_theta (models::GaussianEnsemble) as plain data.
/// Member input z = ((x; a; o[obs_features]) - in_mean) ./ in_std, of size X + A + F.
/// Member output (2X rows): mu_hat (normalised mean of the delta) and r (raw log-std), with
///   log_sigma = max_logstd - softplus(max_logstd - r);  log_sigma = min_logstd + softplus(log_sigma - min_logstd)
///   delta     = delta_mean + delta_std .* (mu_hat + exp(log_sigma) .* eps),  eps ~ N(0, I)
///   x_next    = x + delta
/// (eps = 0 gives the member's mean prediction.)
template <class T>
struct GaussianEnsembleView {
    std::int32_t members = 0;            ///< [1, max_view_members]
    std::int32_t internal_dim = 0;       ///< X
    std::int32_t action_dim = 0;         ///< A
    std::int32_t num_obs_features = 0;   ///< F
    MLPView<T> member[max_view_members] = {};
    const T* in_mean = nullptr;          ///< X + A + F
    const T* in_std = nullptr;           ///< X + A + F, all > 0
    const T* delta_mean = nullptr;       ///< X
    const T* delta_std = nullptr;        ///< X, all > 0
    const std::int32_t* obs_features = nullptr;  ///< F indices into o
    T min_logstd = T(-5);
    T max_logstd = T(0.5);
};

}  // namespace persist::parallel
