#pragma once
/// @file adafactor.hpp
/// Adafactor (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
/// Cost", Algorithms 4 and 5 with the relative step size of Section 8). The second moment of
/// an n x m weight matrix is stored as its row and column averages (n + m numbers, not n m),
/// so the optimizer must know the parameter layout: a list of column-major matrix blocks
/// inside the flat vector.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "persist/optim/optimizer.hpp"

namespace persist::optim {

/// A column-major rows x cols matrix stored at params[offset, offset + rows cols), i.e.
/// `MatMap<T>(params.data() + offset, rows, cols)`, the layout of nn/'s weight views.
struct ParamBlock {
    Index offset = 0;
    Index rows = 1;
    Index cols = 1;
};

template <class T>
struct AdafactorOptions {
    /// relative_step: rho_t = min(lr, 1 / sqrt(t)) (the paper's min(1e-2, 1/sqrt(t)));
    /// otherwise rho_t = lr. A schedule driving set_lr thus caps or sets rho_t.
    T lr = T(1e-2);
    bool relative_step = true;
    /// alpha_t = max(eps2, RMS(X_{t-1})) rho_t (Section 8); false: alpha_t = rho_t.
    bool scale_parameter = true;
    /// Momentum on the clipped, scaled update (tensor2tensor form), [0, 1). 0 = none, as in the
    /// paper's Algorithms 4/5; > 0 costs one extra vector of n.
    T beta1 = T(0);
    /// c in (0, 1]: beta2_t = 1 - t^(-c) (Section 7.2, paper uses 0.8).
    T decay_rate = T(0.8);
    /// d > 0: U <- U / max(1, RMS(U) / d) (update clipping, Section 6).
    T clip_threshold = T(1);
    T eps1 = T(1e-30);  ///< regulariser added to G^2
    T eps2 = T(1e-3);   ///< floor of RMS(X) in the relative step size
};

/// Adafactor. Per step t and per block X with gradient G:
///   b2 = 1 - t^(-c),  alpha = max(eps2, RMS(X)) rho_t,
///   matrix (rows, cols > 1): R = b2 R + (1 - b2) rowmean(G^2 + eps1),
///                            C = b2 C + (1 - b2) colmean(G^2 + eps1),
///                            V = R C^T / mean(R)   (= paper's R C / 1^T R with row/col sums),
///   vector:                  V = b2 V + (1 - b2)(G^2 + eps1),
///   U = G / sqrt(V),  U <- U / max(1, RMS(U) / d),  X <- X - alpha U
///   (with beta1 > 0: M = beta1 M + (1 - beta1) alpha U, X <- X - M).
/// Parameters outside every layout block form unfactored vector blocks (one per gap), so
/// `Adafactor(n)` treats the whole vector as one vector block. Blocks with one row or one
/// column are vectors too. RMS(X) and RMS(U) are per block, as the paper's per-tensor values.
/// @tparam T float or double.
template <class T>
class Adafactor {
    static_assert(Real<T>,
                  "persist::optim::Adafactor<T>: T must be float or double (docs/optim.md)");

public:
    using scalar_type = T;
    using Options = AdafactorOptions<T>;
    /// A block of the full, gap-filled layout and where its state lives.
    struct BlockInfo {
        ParamBlock block;
        bool factored = false;
        Index row_offset = 0;  ///< into State::row (factored)
        Index col_offset = 0;  ///< into State::col (factored)
        Index v_offset = 0;    ///< into State::v (vector)
    };
    struct State {
        Vec<T> row;   ///< row averages R of every factored block, concatenated
        Vec<T> col;   ///< column averages C of every factored block, concatenated
        Vec<T> v;     ///< unfactored second moment of every vector block, concatenated
        Vec<T> m;     ///< momentum (beta1 > 0 only), n entries, else empty
        std::int64_t step = 0;
    };

    explicit Adafactor(Index n_params, std::vector<ParamBlock> layout = {},
                       const Options& options = {})
        : n_(n_params), opt_(options) {
        detail::check_n("Adafactor", n_params);
        validate(opt_);
        build_layout(std::move(layout));
    }

    static void validate(const Options& o) {
        detail::require_lr("Adafactor", static_cast<double>(o.lr));
        detail::require(detail::unit_half_open(o.beta1), "Adafactor", "beta1", "in [0, 1)", o.beta1);
        detail::require(o.decay_rate > T(0) && o.decay_rate <= T(1), "Adafactor", "decay_rate",
                        "in (0, 1]", o.decay_rate);
        detail::require(detail::finite_pos(o.clip_threshold), "Adafactor", "clip_threshold",
                        "finite and > 0", o.clip_threshold);
        detail::require(detail::finite_nonneg(o.eps1), "Adafactor", "eps1", "finite and >= 0", o.eps1);
        detail::require(detail::finite_nonneg(o.eps2), "Adafactor", "eps2", "finite and >= 0", o.eps2);
    }

    Index size() const { return n_; }
    const Options& options() const { return opt_; }
    const State& state() const { return state_; }
    /// The full layout (user blocks plus gap-filling vector blocks), sorted by offset.
    const std::vector<BlockInfo>& blocks() const { return blocks_; }
    /// Number of scalars of state (excluding the step counter): rows + cols per factored block,
    /// rows cols per vector block, plus n with momentum.
    Index state_numel() const {
        return state_.row.size() + state_.col.size() + state_.v.size() + state_.m.size();
    }

    void step(VecRef<T> params, VecCRef<T> grads) {
        detail::check_step("Adafactor", n_, params, grads);
        const std::int64_t t = ++state_.step;
        const double td = static_cast<double>(t);
        const T beta2t = static_cast<T>(1.0 - std::pow(td, -static_cast<double>(opt_.decay_rate)));
        const double rho = opt_.relative_step
                               ? std::min(static_cast<double>(opt_.lr), 1.0 / std::sqrt(td))
                               : static_cast<double>(opt_.lr);
        for (const auto& b : blocks_) {
            const Index off = b.block.offset, numel = b.block.rows * b.block.cols;
            double alpha = rho;
            if (opt_.scale_parameter) {
                const double rms_x =
                    std::sqrt(static_cast<double>(params.segment(off, numel).squaredNorm()) /
                              static_cast<double>(numel));
                alpha *= std::max(static_cast<double>(opt_.eps2), rms_x);
            }
            if (b.factored) {
                factored_step(b, params.data() + off, grads.data() + off, alpha, beta2t);
            } else {
                vector_step(b, params.segment(off, numel), grads.segment(off, numel), alpha, beta2t);
            }
        }
    }

    void reset() {
        state_.row.setZero();
        state_.col.setZero();
        state_.v.setZero();
        state_.m.setZero();
        state_.step = 0;
    }
    void set_lr(T lr) {
        detail::require_lr("Adafactor", static_cast<double>(lr));
        opt_.lr = lr;
    }
    T lr() const { return opt_.lr; }

    template <class V>
    void visit_state(V&& v) {
        if (state_.row.size() > 0) {
            v(state_tensor("row", state_.row.data(), {static_cast<std::int64_t>(state_.row.size())}));
            v(state_tensor("col", state_.col.data(), {static_cast<std::int64_t>(state_.col.size())}));
        }
        if (state_.v.size() > 0) {
            v(state_tensor("v", state_.v.data(), {static_cast<std::int64_t>(state_.v.size())}));
        }
        if (state_.m.size() > 0) {
            v(state_tensor("m", state_.m.data(), {static_cast<std::int64_t>(state_.m.size())}));
        }
        v(state_tensor("step", &state_.step, {}));
    }

private:
    static std::string describe(const ParamBlock& b, std::size_t i) {
        return "layout[" + std::to_string(i) + "] (offset " + std::to_string(b.offset) + ", " +
               std::to_string(b.rows) + " x " + std::to_string(b.cols) + ")";
    }

    void build_layout(std::vector<ParamBlock> layout) {
        std::vector<std::size_t> order(layout.size());
        for (std::size_t i = 0; i < layout.size(); ++i) {
            const auto& b = layout[i];
            order[i] = i;
            if (b.offset < 0 || b.rows < 1 || b.cols < 1 || b.offset + b.rows * b.cols > n_) {
                throw ShapeError("Adafactor: " + describe(b, i) +
                                 " must have rows, cols >= 1 and lie inside [0, n_params = " +
                                 std::to_string(n_) + ")");
            }
        }
        std::sort(order.begin(), order.end(),
                  [&](std::size_t a, std::size_t b) { return layout[a].offset < layout[b].offset; });
        Index pos = 0, rows = 0, cols = 0, vsize = 0, max_rows = 0, max_cols = 0;
        auto add = [&](const ParamBlock& pb) {
            BlockInfo bi;
            bi.block = pb;
            bi.factored = pb.rows > 1 && pb.cols > 1;
            if (bi.factored) {
                bi.row_offset = rows;
                bi.col_offset = cols;
                rows += pb.rows;
                cols += pb.cols;
                max_rows = std::max(max_rows, pb.rows);
                max_cols = std::max(max_cols, pb.cols);
            } else {
                bi.v_offset = vsize;
                vsize += pb.rows * pb.cols;
            }
            blocks_.push_back(bi);
        };
        for (std::size_t k = 0; k < order.size(); ++k) {
            const auto& b = layout[order[k]];
            if (b.offset < pos) {
                throw ShapeError("Adafactor: " + describe(b, order[k]) + " overlaps " +
                                 describe(layout[order[k - 1]], order[k - 1]));
            }
            if (b.offset > pos) add(ParamBlock{pos, b.offset - pos, 1});  // gap: a vector block
            add(b);
            pos = b.offset + b.rows * b.cols;
        }
        if (pos < n_) add(ParamBlock{pos, n_ - pos, 1});
        state_.row.setZero(rows);
        state_.col.setZero(cols);
        state_.v.setZero(vsize);
        if (opt_.beta1 > T(0)) state_.m.setZero(n_);
        rinv_.setZero(max_rows);
        cinv_.setZero(max_cols);
    }

    // Algorithm 4 (matrices). Two passes over G (RMS(U), then the update) so that U is never
    // stored: the O(rows + cols) memory is the point.
    void factored_step(const BlockInfo& b, T* x_data, const T* g_data, double alpha, T beta2t) {
        const Index rows = b.block.rows, cols = b.block.cols;
        Eigen::Map<Mat<T>> X(x_data, rows, cols);
        Eigen::Map<const Mat<T>> G(g_data, rows, cols);
        auto R = state_.row.segment(b.row_offset, rows).array();
        auto C = state_.col.segment(b.col_offset, cols).array();
        const T e1 = opt_.eps1, one_minus = T(1) - beta2t;
        R = beta2t * R + one_minus * (G.array().square() + e1).rowwise().mean();
        C = beta2t * C + one_minus * (G.array().square() + e1).colwise().mean().transpose();
        // 1 / sqrt(V_ij) = ri_i * ci_j with V = R C^T / mean(R).
        auto ri = rinv_.head(rows).array();
        auto ci = cinv_.head(cols).array();
        ri = (R / R.mean()).sqrt().inverse();
        ci = C.sqrt().inverse();
        double sumsq = 0.0;
        for (Index j = 0; j < cols; ++j) {
            sumsq += static_cast<double>(ci(j) * ci(j)) *
                     static_cast<double>((G.col(j).array() * ri).square().sum());
        }
        const T scale = clipped_scale(alpha, sumsq, rows * cols);
        if (opt_.beta1 > T(0)) {
            const T b1 = opt_.beta1;
            Eigen::Map<Mat<T>> M(state_.m.data() + b.block.offset, rows, cols);
            for (Index j = 0; j < cols; ++j) {
                M.col(j).array() = b1 * M.col(j).array() +
                                   ((T(1) - b1) * scale * ci(j)) * (G.col(j).array() * ri);
                X.col(j) -= M.col(j);
            }
        } else {
            for (Index j = 0; j < cols; ++j) {
                X.col(j).array() -= (scale * ci(j)) * (G.col(j).array() * ri);
            }
        }
    }

    // Algorithm 5 (vectors).
    template <class XS, class GS>
    void vector_step(const BlockInfo& b, XS x, const GS& gs, double alpha, T beta2t) {
        const Index numel = b.block.rows * b.block.cols;
        auto X = x.array();
        const auto G = gs.array();
        auto V = state_.v.segment(b.v_offset, numel).array();
        V = beta2t * V + (T(1) - beta2t) * (G.square() + opt_.eps1);
        const double sumsq = static_cast<double>((G.square() / V).sum());
        const T scale = clipped_scale(alpha, sumsq, numel);
        if (opt_.beta1 > T(0)) {
            const T b1 = opt_.beta1;
            auto M = state_.m.segment(b.block.offset, numel).array();
            M = b1 * M + ((T(1) - b1) * scale) * (G / V.sqrt());
            X -= M;
        } else {
            X -= scale * (G / V.sqrt());
        }
    }

    /// alpha / max(1, RMS(U) / d).
    T clipped_scale(double alpha, double sumsq, Index numel) const {
        const double rms_u = std::sqrt(sumsq / static_cast<double>(numel));
        return static_cast<T>(alpha / std::max(1.0, rms_u / static_cast<double>(opt_.clip_threshold)));
    }

    Index n_;
    Options opt_;
    State state_;
    std::vector<BlockInfo> blocks_;
    Vec<T> rinv_, cinv_;  // workspace, not state
};

}  // namespace persist::optim
