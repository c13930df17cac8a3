#pragma once
/// @file any_state_estimator.hpp
/// AnyStateEstimator<T>: holds any persist::StateEstimator of scalar T by value (type erasure,
/// like std::function), so PersistAgent can take a GRU, a Kalman filter or a user's own
/// estimator at run time without one agent type per estimator. One indirect call per
/// environment step; checkpoints reach the held estimator's visit_state; `target<E>()` gives
/// the concrete object back. docs/models.md, "State estimators".
#include <functional>
#include <limits>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <nlohmann/json.hpp>

#include "persist/core/concepts.hpp"
#include "persist/core/error.hpp"
#include "persist/core/state.hpp"
#include "persist/core/types.hpp"

namespace persist::models {

template <class T>
class AnyStateEstimator {
public:
    using scalar_type = T;

    template <class E>
        requires StateEstimator<std::decay_t<E>> && std::same_as<scalar_of<std::decay_t<E>>, T> &&
                 (!std::same_as<std::decay_t<E>, AnyStateEstimator>)
    AnyStateEstimator(E&& e)  // NOLINT(google-explicit-constructor): a wrapper, like std::function
        : p_(std::make_unique<Model<std::decay_t<E>>>(std::forward<E>(e))) {}

    AnyStateEstimator(const AnyStateEstimator& o) : p_(o.p_ ? o.p_->clone() : nullptr) {}
    AnyStateEstimator(AnyStateEstimator&&) noexcept = default;
    AnyStateEstimator& operator=(AnyStateEstimator o) noexcept {
        p_ = std::move(o.p_);
        return *this;
    }

    Index obs_dim() const { return p_->obs_dim(); }
    Index state_dim() const { return p_->state_dim(); }
    const Vec<T>& begin_episode(VecCRef<T> o0) { return p_->begin_episode(o0); }
    const Vec<T>& step(VecCRef<T> o, VecCRef<T> a, VecCRef<T> o_next) { return p_->step(o, a, o_next); }
    const Vec<T>& estimate() const { return p_->estimate(); }

    /// True when the held estimator learns from replay sequences (persist::TrainableStateEstimator).
    bool trainable() const { return p_->trainable(); }
    /// Sequence length and sequences per update of a trainable estimator (0 otherwise).
    Index sequence_length() const { return p_->sequence_length(); }
    Index batch_size() const { return p_->batch_size(); }
    /// One update of a trainable estimator (NaN for one that is not); returns the loss.
    double update(MatCRef<T> obs, MatCRef<T> x) { return p_->update(obs, x); }

    /// The held estimator's describe() (what an agent checkpoint records), or null.
    nlohmann::json describe() const { return p_->describe(); }
    const std::type_info& target_type() const { return p_->type(); }
    /// The held estimator when it is an E, else nullptr.
    template <class E>
    E* target() noexcept {
        return p_->type() == typeid(E) ? static_cast<E*>(p_->get()) : nullptr;
    }
    template <class E>
    const E* target() const noexcept {
        return p_->type() == typeid(E) ? static_cast<const E*>(p_->get()) : nullptr;
    }

    template <class V>
    void visit_state(V&& v) {
        p_->visit([&](TensorRef t) { v(std::move(t)); });
    }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual std::unique_ptr<Concept> clone() const = 0;
        virtual Index obs_dim() const = 0;
        virtual Index state_dim() const = 0;
        virtual const Vec<T>& begin_episode(VecCRef<T>) = 0;
        virtual const Vec<T>& step(VecCRef<T>, VecCRef<T>, VecCRef<T>) = 0;
        virtual const Vec<T>& estimate() const = 0;
        virtual bool trainable() const = 0;
        virtual Index sequence_length() const = 0;
        virtual Index batch_size() const = 0;
        virtual double update(MatCRef<T>, MatCRef<T>) = 0;
        virtual nlohmann::json describe() const = 0;
        virtual const std::type_info& type() const = 0;
        virtual void* get() = 0;
        virtual const void* get() const = 0;
        virtual void visit(const std::function<void(TensorRef)>&) = 0;
    };
    template <class E>
    struct Model final : Concept {
        E e;
        template <class U>
        explicit Model(U&& u) : e(std::forward<U>(u)) {}
        std::unique_ptr<Concept> clone() const override {
            if constexpr (std::is_copy_constructible_v<E>) {
                return std::make_unique<Model>(e);
            } else {
                throw Error("AnyStateEstimator: the held estimator cannot be copied");
            }
        }
        Index obs_dim() const override { return static_cast<Index>(e.obs_dim()); }
        Index state_dim() const override { return static_cast<Index>(e.state_dim()); }
        const Vec<T>& begin_episode(VecCRef<T> o0) override { return e.begin_episode(o0); }
        const Vec<T>& step(VecCRef<T> o, VecCRef<T> a, VecCRef<T> on) override { return e.step(o, a, on); }
        const Vec<T>& estimate() const override { return e.estimate(); }
        bool trainable() const override { return TrainableStateEstimator<E>; }
        Index sequence_length() const override {
            if constexpr (TrainableStateEstimator<E>) return static_cast<Index>(e.sequence_length());
            else return 0;
        }
        Index batch_size() const override {
            if constexpr (TrainableStateEstimator<E>) return static_cast<Index>(e.batch_size());
            else return 0;
        }
        double update(MatCRef<T> obs, MatCRef<T> x) override {
            if constexpr (TrainableStateEstimator<E>) return static_cast<double>(e.update(obs, x));
            else return std::numeric_limits<double>::quiet_NaN();
        }
        nlohmann::json describe() const override {
            if constexpr (requires { { e.describe() } -> std::convertible_to<nlohmann::json>; }) return e.describe();
            else return nullptr;
        }
        const std::type_info& type() const override { return typeid(E); }
        void* get() override { return &e; }
        const void* get() const override { return &e; }
        void visit(const std::function<void(TensorRef)>& f) override { e.visit_state(f); }
    };
    std::unique_ptr<Concept> p_;
};

}  // namespace persist::models
