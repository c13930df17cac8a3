#pragma once
/// @file common.hpp
/// Vocabulary shared by the intrinsic rewards (persist::Intrinsic, core/concepts.hpp): what an
/// update step reports, how per-dimension terms are reduced, and argument checks.
/// docs/intrinsic.md.
#include <cmath>
#include <sstream>
#include <string>

#include "persist/core/error.hpp"
#include "persist/core/types.hpp"

namespace persist::intrinsic {

/// What one `update(batch)` did: the training loss on the batch *before* the step (the
/// quantity minimised: mean NLL for Surprise, masked mean prediction error for RND) and the
/// number of samples that contributed to the gradient.
template <class T>
struct UpdateStats {
    T loss = T(0);
    Index samples = 0;
};

/// How per-dimension terms of one sample are combined into one number.
enum class Reduction {
    sum,   ///< sum over dimensions (the joint NLL / the squared norm)
    mean,  ///< mean over dimensions (scale independent of the dimension count)
};

inline const char* reduction_name(Reduction r) { return r == Reduction::sum ? "sum" : "mean"; }

namespace detail {

inline std::string num(double v) {
    std::ostringstream os;
    os.precision(10);
    os << v;
    return os.str();
}

/// ConfigError "<who>: <what> must be <cond>, got <value>" unless ok (NaN fails every check).
inline void require(bool ok, const char* who, const char* what, const char* cond, double value) {
    if (!ok) throw ConfigError(std::string(who) + ": " + what + " must be " + cond + ", got " + num(value));
}

/// Columns of every reward argument agree with out.size(); rows where expected (< 0: any).
inline void check_reward_args(const char* who, Index s_rows, Index s_cols, Index a_rows, Index a_cols,
                              Index o_rows, Index o_cols, Index out_size, Index want_s, Index want_a,
                              Index want_o) {
    const Index B = o_cols;
    auto w = [who](const char* arg) { return std::string(who) + ": " + arg; };  // only on error
    if (want_o >= 0 && o_rows != want_o) persist::detail::throw_shape(w("o_next"), want_o, B, o_rows, o_cols);
    if (s_cols != B || (want_s >= 0 && s_rows != want_s))
        persist::detail::throw_shape(w("s"), want_s >= 0 ? want_s : s_rows, B, s_rows, s_cols);
    if (a_cols != B || (want_a >= 0 && a_rows != want_a))
        persist::detail::throw_shape(w("a"), want_a >= 0 ? want_a : a_rows, B, a_rows, a_cols);
    if (out_size != B) persist::detail::throw_shape(w("out"), B, 1, out_size, 1);
}

}  // namespace detail

}  // namespace persist::intrinsic
