#pragma once
/// @file mlp.hpp
/// Multi-layer perceptron with runtime widths (model of persist::Network).
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/nn/activations.hpp"
#include "persist/nn/layer_norm.hpp"
#include "persist/nn/linear.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace persist::nn {

struct MLPOptions {
    bool layer_norm = false;      ///< LayerNorm after every hidden Linear, before the activation
    double layer_norm_eps = 1e-5;
    /// Threads of forward() and backward(), >= 1 (ReLU networks without LayerNorm; others run
    /// serially). With n >= 2 and a batch of at least 2 * MLP::kMinBlockColumns columns, the batch
    /// is cut into min(n, B / kMinBlockColumns) column blocks (forward, dX) and each layer's
    /// parameter gradient into as many row blocks, on OpenMP threads (backward: one barrier,
    /// between the dX chain and the parameter gradients). Every element is computed as in the serial pass: with the AVX-512 kernel the
    /// result is bitwise the same for every n; elsewhere it is the same for a given n.
    Index threads = 1;
};

/// widths = {in, h_1, ..., h_k, out}: k hidden blocks Linear -> [LayerNorm] -> Act, then a
/// final Linear with no activation. Flat parameter layout, block by block: W (column-major),
/// b, then LayerNorm gain and bias when enabled.
/// @tparam T   float or double
/// @tparam Act pointwise activation template (ReLU, Tanh, ELU, SiLU, Sigmoid, ...)
template <class T, template <class> class Act = ReLU>
class MLP {
public:
    using scalar_type = T;
    using activation_type = Act<T>;

    /// Buffers of one batch size; reuse it so a fixed batch size never allocates.
    struct Workspace {
        Mat<T> x;                   // copy of the input (dW of the first layer needs it)
        std::vector<Mat<T>> z;      // z[l]: output of Linear l (not kept for hidden ReLU blocks
                                    // without LayerNorm: their backward needs only h[l])
        std::vector<Mat<T>> n;      // n[l]: LayerNorm output of hidden block l
        std::vector<Mat<T>> h;      // h[l]: activation output of hidden block l
        std::vector<Mat<T>> g;      // g[l]: dL/d(input of Linear l), l >= 1; reused in place
        std::vector<Mat<T>> gz;     // gz[l]: dL/dz[l] of hidden block l (LayerNorm only)
        std::vector<typename LayerNorm<T>::Cache> ln;
        std::vector<typename Linear<T>::Cache> lin;  // GEMM packing buffers, one per Linear
        std::vector<typename Linear<T>::Cache> lin_blocks;  // blocks 1.. of a threaded pass
    };

    /// Fewest batch columns per block of a threaded pass (MLPOptions::threads).
    static constexpr Index kMinBlockColumns = 8;

    explicit MLP(std::vector<Index> widths, MLPOptions opt = {})
        : widths_(std::move(widths)), opt_(opt) {
        if (opt_.threads < 1)
            throw ConfigError("MLPOptions.threads = " + std::to_string(opt_.threads) + ": expected >= 1");
        if (widths_.size() < 2)
            throw ConfigError("MLP: widths needs at least {in, out}, got " +
                              std::to_string(widths_.size()) + " entries");
        for (std::size_t i = 0; i < widths_.size(); ++i)
            if (widths_[i] <= 0)
                throw ConfigError("MLP: widths[" + std::to_string(i) + "] must be positive, got " +
                                  std::to_string(widths_[i]));
        const std::size_t L = widths_.size() - 1;
        Index total = 0;
        for (std::size_t l = 0; l < L; ++l) {
            lin_.emplace_back(widths_[l], widths_[l + 1]);
            total += lin_.back().param_count();
            if (l + 1 < L) {
                act_.emplace_back(widths_[l + 1]);
                if (opt_.layer_norm) {
                    ln_.emplace_back(widths_[l + 1], opt_.layer_norm_eps);
                    total += ln_.back().param_count();
                }
            }
        }
        params_.setZero(total);
        grads_.setZero(total);
        bind_all();
    }
    MLP(const MLP& o)
        : widths_(o.widths_), opt_(o.opt_), lin_(o.lin_), ln_(o.ln_), act_(o.act_),
          params_(o.params_), grads_(o.grads_) {
        bind_all();
    }
    MLP(MLP&& o) noexcept
        : widths_(std::move(o.widths_)), opt_(o.opt_), lin_(std::move(o.lin_)),
          ln_(std::move(o.ln_)), act_(std::move(o.act_)), params_(std::move(o.params_)),
          grads_(std::move(o.grads_)) {
        bind_all();
    }
    MLP& operator=(const MLP& o) {
        if (this != &o) {
            MLP tmp(o);
            *this = std::move(tmp);
        }
        return *this;
    }
    MLP& operator=(MLP&& o) noexcept {
        widths_ = std::move(o.widths_);
        opt_ = o.opt_;
        lin_ = std::move(o.lin_);
        ln_ = std::move(o.ln_);
        act_ = std::move(o.act_);
        params_ = std::move(o.params_);
        grads_ = std::move(o.grads_);
        bind_all();
        return *this;
    }

    Index in_dim() const { return widths_.front(); }
    Index out_dim() const { return widths_.back(); }
    Index param_count() const { return params_.size(); }
    const std::vector<Index>& widths() const { return widths_; }
    const MLPOptions& options() const { return opt_; }
    /// MLPOptions::threads of later passes (>= 1).
    void set_threads(Index n) {
        if (n < 1) throw ConfigError("MLP::set_threads(" + std::to_string(n) + "): expected >= 1");
        opt_.threads = n;
    }
    Index threads() const { return opt_.threads; }
    /// Number of Linear layers (hidden blocks + 1).
    Index num_linear() const { return static_cast<Index>(lin_.size()); }
    Linear<T>& linear(Index l) { return lin_[static_cast<std::size_t>(l)]; }
    const Linear<T>& linear(Index l) const { return lin_[static_cast<std::size_t>(l)]; }
    /// LayerNorm of hidden block l (only with options().layer_norm).
    LayerNorm<T>& layer_norm(Index l) { return ln_[static_cast<std::size_t>(l)]; }

    /// Flat parameters / gradients. Assign or update in place; never resize.
    Vec<T>& params() { return params_; }
    Vec<T>& grads() { return grads_; }
    const Vec<T>& params() const { return params_; }
    const Vec<T>& grads() const { return grads_; }
    void zero_grad() { grads_.setZero(); }

    Workspace make_workspace() const {
        Workspace ws;
        shape_workspace(ws);
        return ws;
    }

    /// Every Linear with `scheme`; LayerNorms to gain 1, bias 0.
    void init(Rng& rng, const Init& scheme = {}) { init(rng, scheme, scheme); }
    /// Hidden Linears with `hidden`, the output Linear with `output` (e.g. PPO: orthogonal
    /// sqrt(2) hidden, 0.01 policy output).
    void init(Rng& rng, const Init& hidden, const Init& output) {
        for (std::size_t l = 0; l < lin_.size(); ++l) {
            lin_[l].init(rng, l + 1 < lin_.size() ? hidden : output);
            if (l < ln_.size()) ln_[l].init(rng, hidden);
        }
    }

    std::string name() const {
        std::string s = "MLP[";
        for (std::size_t i = 0; i < widths_.size(); ++i) {
            if (i) s += '-';
            s += std::to_string(widths_[i]);
        }
        s += ']';
        return s;
    }

    /// Forward pass of x (in_dim x B); the result lives in `ws` until its next use.
    const Mat<T>& forward(MatCRef<T> x, Workspace& ws) const {
        check_bound();
        detail::check_shape([this] { return name(); }, "forward input", in_dim(), x.cols(),
                            x.rows(), x.cols());
        shape_workspace(ws);
        ensure_shape(ws.x, x.rows(), x.cols());
        ws.x = x;
        const std::size_t L = lin_.size();
        if (const Index nb = blocks(x.cols()); nb > 1) {
            forward_blocks(ws, nb);
            return ws.z[L - 1];
        }
        typename Act<T>::Cache ac;
        const Mat<T>* in = &ws.x;
        for (std::size_t l = 0; l < L; ++l) {
            if (l + 1 < L && fused_relu()) {  // bias and ReLU in the GEMM's epilogue
                lin_[l].forward_relu(*in, ws.h[l], ws.lin[l]);
                in = &ws.h[l];
                continue;
            }
            lin_[l].forward(*in, ws.z[l], ws.lin[l]);
            if (l + 1 == L) break;
            const Mat<T>* pre = &ws.z[l];
            if (opt_.layer_norm) {
                ln_[l].forward(ws.z[l], ws.n[l], ws.ln[l]);
                pre = &ws.n[l];
            }
            act_[l].forward(*pre, ws.h[l], ac);
            in = &ws.h[l];
        }
        return ws.z[L - 1];
    }

    /// Backward pass for the last forward on `ws`: accumulates dL/dparams into grads() when
    /// `param_grads`, writes dL/dx into *grad_in when non-null (skipped otherwise).
    /// With `mode = GradMode::overwrite` the parameter gradients are written instead of
    /// accumulated: the same result as zero_grad() followed by an accumulating backward, without
    /// the separate pass over grads() (measurably faster at batch size 1).
    void backward(Workspace& ws, MatCRef<T> grad_out, Mat<T>* grad_in = nullptr,
                  bool param_grads = true, GradMode mode = GradMode::accumulate) {
        check_backward(ws, grad_out, "backward");
        const std::size_t L = lin_.size();
        if (!grad_in && !param_grads) return;
        if (const Index nb = blocks(ws.x.cols()); nb > 1) {
            backward_blocks(ws, grad_out, grad_in, param_grads, mode, nb);
            return;
        }
        typename Act<T>::Cache ac;
        // Fused ReLU blocks: layer l's input gradient comes out of its GEMM already multiplied
        // by h[l-1] > 0 (ReLU's derivative), so ws.g[l] holds dL/dz[l-1] and the activation's
        // own backward pass is skipped.
        const bool fused = fused_relu();
        for (std::size_t l = L; l-- > 0;) {
            const Mat<T>& in = l == 0 ? ws.x : ws.h[l - 1];
            Mat<T>* gin = l == 0 ? grad_in : &ws.g[l];
            const Mat<T>* mask = fused && l > 0 ? &ws.h[l - 1] : nullptr;
            if (l + 1 == L) {
                lin_[l].backward(in, ws.z[l], grad_out, gin, ws.lin[l], param_grads, mode, mask);
                continue;
            }
            Mat<T>& dh = ws.g[l + 1];  // dL/dh[l], turned into dL/d(pre-activation) in place
            if (!fused) {
                const Mat<T>& pre = opt_.layer_norm ? ws.n[l] : ws.z[l];
                act_[l].backward(pre, ws.h[l], dh, &dh, ac, false);
            }
            const Mat<T>* dz = &dh;
            if (opt_.layer_norm) {
                if (param_grads && mode == GradMode::overwrite) {
                    ln_[l].gain_grad().setZero();
                    ln_[l].bias_grad().setZero();
                }
                ln_[l].backward(ws.z[l], ws.n[l], dh, &ws.gz[l], ws.ln[l], param_grads);
                dz = &ws.gz[l];
            }
            lin_[l].backward(in, ws.z[l], *dz, gin, ws.lin[l], param_grads, mode, mask);
        }
    }

    /// dL/dx for the input rows [row0, row0 + rows) only, into grad_in (rows x B), for the last
    /// forward on `ws`; no parameter gradients. Equal to those rows of backward()'s grad_in,
    /// at the cost of the first layer's product for `rows` inputs instead of all of them.
    void backward_input_rows(Workspace& ws, MatCRef<T> grad_out, Index row0, Index rows, Mat<T>& grad_in) {
        check_backward(ws, grad_out, "backward_input_rows");
        const std::size_t L = lin_.size();
        typename Act<T>::Cache ac;
        const bool fused = fused_relu();  // as in backward()
        const Mat<T>* g = nullptr;  // dL/dz of layer l (grad_out for the last)
        for (std::size_t l = L; l-- > 0;) {
            if (l + 1 < L) {
                Mat<T>& dh = ws.g[l + 1];
                if (!fused) {
                    const Mat<T>& pre = opt_.layer_norm ? ws.n[l] : ws.z[l];
                    act_[l].backward(pre, ws.h[l], dh, &dh, ac, false);
                }
                g = &dh;
                if (opt_.layer_norm) {
                    ln_[l].backward(ws.z[l], ws.n[l], dh, &ws.gz[l], ws.ln[l], false);
                    g = &ws.gz[l];
                }
            }
            const MatCRef<T> go = l + 1 == L ? grad_out : MatCRef<T>(*g);
            if (l == 0) {
                lin_[0].input_grad_rows(go, row0, rows, grad_in, ws.lin[0]);
            } else {
                const Mat<T>& in = ws.h[l - 1];
                lin_[l].backward(in, ws.z[l], go, &ws.g[l], ws.lin[l], false, GradMode::accumulate,
                                 fused ? &ws.h[l - 1] : nullptr);
            }
        }
    }

    /// Parameters bound, a forward pass on `ws`, grad_out of its shape; `what` names the caller.
    void check_backward(const Workspace& ws, MatCRef<T> grad_out, const char* what) const {
        check_bound();
        const std::size_t L = lin_.size();
        if (ws.z.size() != L || ws.z[L - 1].cols() != ws.x.cols())
            throw ShapeError(name() + ": " + what + " called on a workspace without a forward pass");
        detail::check_shape([this] { return name(); }, "backward grad_out", out_dim(), ws.x.cols(),
                            grad_out.rows(), grad_out.cols());
    }

    /// Hidden blocks computed by Linear::forward_relu (ReLU without LayerNorm): h[l] only.
    bool fused_relu() const { return std::is_same_v<Act<T>, ReLU<T>> && !opt_.layer_norm; }

    template <class V>
    void visit_state(V&& v) {
        v(state_tensor("params", params_.data(), {static_cast<std::int64_t>(params_.size())}));
    }

private:
    /// Column blocks of a threaded pass over B columns (1: serial).
    Index blocks(Index B) const {
        if (opt_.threads < 2 || !fused_relu()) return 1;
        return std::max<Index>(1, std::min<Index>(opt_.threads, B / kMinBlockColumns));
    }
    /// Columns [c0, c0 + nc) of block b of nb over B columns (even split).
    static std::pair<Index, Index> column_block(Index B, Index nb, Index b) {
        const Index c0 = B * b / nb, c1 = B * (b + 1) / nb;
        return {c0, c1 - c0};
    }
    /// Rows [r0, r0 + nr) of block b of nb over R rows, cut at multiples of 16 (whole vectors
    /// of the AVX-512 kernel); a block may be empty.
    static std::pair<Index, Index> row_block(Index R, Index nb, Index b) {
        const auto edge = [&](Index i) { return i == nb ? R : std::min<Index>(R, (R * i / nb + 8) / 16 * 16); };
        const Index r0 = edge(b), r1 = std::max(r0, edge(b + 1));
        return {r0, r1 - r0};
    }
    typename Linear<T>::Cache& block_cache(Workspace& ws, std::size_t l, Index b) const {
        return b == 0 ? ws.lin[l] : ws.lin_blocks[static_cast<std::size_t>(b - 1) * lin_.size() + l];
    }
    /// Runs body(b) for blocks b = 0..nb-1 on up to nb OpenMP threads (all on the calling
    /// thread inside another parallel region); body may contain `sync()` calls, which every
    /// thread reaches equally often. The first exception is rethrown after the region.
    template <class Body>
    static void run_blocks(Index nb, Body&& body) {
        std::exception_ptr err;
#if defined(_OPENMP)
#pragma omp parallel num_threads(static_cast<int>(nb))
        {
            const Index nt = omp_get_num_threads(), tid = omp_get_thread_num();
            try {
                body(tid, nt);
            } catch (...) {
#pragma omp critical(persist_mlp_error)
                if (!err) err = std::current_exception();
            }
        }
#else
        try {
            body(Index(0), Index(1));
        } catch (...) {
            err = std::current_exception();
        }
#endif
        if (err) std::rethrow_exception(err);
    }
    static void sync() {
#if defined(_OPENMP)
#pragma omp barrier
#endif
    }

    /// forward() of a ReLU network in nb column blocks.
    void forward_blocks(Workspace& ws, Index nb) const {
        const std::size_t L = lin_.size();
        const Index B = ws.x.cols();
        for (std::size_t l = 0; l + 1 < L; ++l) ensure_shape(ws.h[l], widths_[l + 1], B);
        ensure_shape(ws.z[L - 1], widths_[L], B);
        if (ws.lin_blocks.size() < static_cast<std::size_t>(nb - 1) * L)
            ws.lin_blocks.resize(static_cast<std::size_t>(nb - 1) * L);
        run_blocks(nb, [&](Index tid, Index nt) {
            // Thread tid owns the same column blocks in every layer: no barrier between layers,
            // except around a layer of one output, whose product (Eigen's GEMV) is done whole:
            // its result per column depends on the number of columns.
            for (std::size_t l = 0; l < L; ++l) {
                const Mat<T>& in = l == 0 ? ws.x : ws.h[l - 1];
                Mat<T>& out = l + 1 < L ? ws.h[l] : ws.z[L - 1];
                if (widths_[l + 1] == 1) {
                    sync();
                    if (tid == 0) lin_[l].forward_cols(in, out, 0, B, l + 1 < L, ws.lin[l]);
                    sync();
                    continue;
                }
                for (Index b = tid; b < nb; b += nt) {
                    const auto [c0, nc] = column_block(B, nb, b);
                    lin_[l].forward_cols(in, out, c0, nc, l + 1 < L, block_cache(ws, l, b));
                }
            }
        });
    }

    /// backward() of a ReLU network in nb blocks, in two phases with one barrier between them.
    /// 1. Each block carries its columns down the dX chain, g[l] = (W_l^T g[l+1]) * (h[l-1] > 0)
    ///    (block b's columns of g[l] need only block b's columns of g[l+1]: no barrier), and the
    ///    last layer's dW/db, which read only grad_out, in row blocks.
    /// 2. After the barrier, every other layer's dW/db in row blocks (they need every column of
    ///    the layer's output gradient).
    void backward_blocks(Workspace& ws, MatCRef<T> grad_out, Mat<T>* grad_in, bool param_grads, GradMode mode,
                         Index nb) {
        const std::size_t L = lin_.size();
        const Index B = ws.x.cols();
        for (std::size_t l = 1; l < L; ++l) ensure_shape(ws.g[l], widths_[l], B);
        if (grad_in) ensure_shape(*grad_in, widths_[0], B);
        if (ws.lin_blocks.size() < static_cast<std::size_t>(nb - 1) * L)
            ws.lin_blocks.resize(static_cast<std::size_t>(nb - 1) * L);
        const auto input_of = [&](std::size_t l) -> const Mat<T>& { return l == 0 ? ws.x : ws.h[l - 1]; };
        const auto grad_of = [&](std::size_t l) { return l + 1 == L ? grad_out : MatCRef<T>(ws.g[l + 1]); };
        run_blocks(nb, [&](Index tid, Index nt) {
            for (Index b = tid; b < nb; b += nt) {
                const auto [c0, nc] = column_block(B, nb, b);
                for (std::size_t l = L; l-- > 0;) {
                    Mat<T>* gin = l == 0 ? grad_in : &ws.g[l];
                    if (!gin || nc <= 0) break;
                    lin_[l].input_grad_cols(grad_of(l), *gin, c0, nc, l > 0 ? &ws.h[l - 1] : nullptr,
                                            block_cache(ws, l, b));
                }
                if (param_grads) {
                    const auto [r0, nr] = row_block(widths_[L], nb, b);
                    lin_[L - 1].param_grad_rows(input_of(L - 1), grad_out, r0, nr, mode, block_cache(ws, L - 1, b));
                }
            }
            if (!param_grads || L == 1) return;
            sync();  // every column of every ws.g[l] written
            for (std::size_t l = L - 1; l-- > 0;)
                for (Index b = tid; b < nb; b += nt) {
                    const auto [r0, nr] = row_block(widths_[l + 1], nb, b);
                    lin_[l].param_grad_rows(input_of(l), grad_of(l), r0, nr, mode, block_cache(ws, l, b));
                }
        });
    }

    void check_bound() const {
        if (params_.data() != pbound_ || grads_.data() != gbound_) [[unlikely]]
            throw ShapeError(name() + ": params() or grads() was resized or swapped; the layers "
                             "view them, so assign same-size vectors only");
    }

    void bind_all() {
        pbound_ = params_.data();
        gbound_ = grads_.data();
        Index off = 0;
        for (std::size_t l = 0; l < lin_.size(); ++l) {
            lin_[l].bind(params_.data() + off, grads_.data() + off);
            off += lin_[l].param_count();
            if (l < ln_.size()) {
                ln_[l].bind(params_.data() + off, grads_.data() + off);
                off += ln_[l].param_count();
            }
        }
    }

    // Only the number of buffers is fixed here; their shapes follow the batch (ensure_shape).
    void shape_workspace(Workspace& ws) const {
        const std::size_t L = lin_.size(), H = L - 1, N = opt_.layer_norm ? H : 0;
        if (ws.z.size() != L) ws.z.resize(L);
        if (ws.lin.size() != L) ws.lin.resize(L);
        if (ws.g.size() != L) ws.g.resize(L);
        if (ws.h.size() != H) ws.h.resize(H);
        if (ws.n.size() != N) ws.n.resize(N);
        if (ws.gz.size() != N) ws.gz.resize(N);
        if (ws.ln.size() != N) ws.ln.resize(N);
    }

    std::vector<Index> widths_;
    MLPOptions opt_;
    std::vector<Linear<T>> lin_;
    std::vector<LayerNorm<T>> ln_;
    std::vector<Act<T>> act_;
    Vec<T> params_, grads_;
    const T* pbound_ = nullptr;  // what the layers were bound to (detects a resized params())
    const T* gbound_ = nullptr;
};

}  // namespace persist::nn
