#pragma once
/// @file none.hpp
/// The null intrinsic reward: R_intr = 0 and a no-op update, for baselines (an agent trained on
/// r_task + lambda_H R_homeo only) and as the template to copy for a new intrinsic.
#include "persist/core/concepts.hpp"
#include "persist/core/records.hpp"
#include "persist/core/types.hpp"
#include "persist/intrinsic/common.hpp"

namespace persist::intrinsic {

/// R_intr(s, a, o') = 0 for every sample. Models persist::Intrinsic and persist::Stateful
/// (with no state). Accepts any dimensions; checks only that the batch sizes agree.
template <class T>
class NoIntrinsic {
    static_assert(Real<T>, "persist::intrinsic::NoIntrinsic<T>: T must be float or double");

public:
    using scalar_type = T;

    /// out(j) = 0 for each column j of o_next (s, a, o_next and out must agree on B).
    void reward(MatCRef<T> s, MatCRef<T> a, MatCRef<T> o_next, VecRef<T> out) const {
        detail::check_reward_args("NoIntrinsic::reward", s.rows(), s.cols(), a.rows(), a.cols(), o_next.rows(),
                                  o_next.cols(), out.size(), -1, -1, -1);
        out.setZero();
    }

    /// Nothing to learn: loss 0, no sample used.
    UpdateStats<T> update(const TransitionBatch<T>&) { return {}; }

    template <class V>
    void visit_state(V&&) {}
};

}  // namespace persist::intrinsic
