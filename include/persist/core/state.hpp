#pragma once
/// @file state.hpp
/// The state protocol: how any trained artifact (network, optimizer, replay buffer, agent)
/// exposes what a checkpoint must save and restore, without the checkpoint knowing its type.
///
/// An object is *stateful* when it has
/// @code
///   template <class Visitor> void visit_state(Visitor&& v);
/// @endcode
/// which calls `v(TensorRef)` once per piece of state, in a fixed order, with names unique
/// within the object. Nested objects forward with `visit_nested(child, "child", v)`, so names
/// become paths ("actor.params", "actor_opt.m"). Loading is two-phase (validate every entry,
/// then copy), so a failed load leaves the object unchanged; shapes are fixed by construction
/// and a checkpoint must match them exactly.
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>

namespace persist {

enum class DType : std::uint8_t { f32 = 1, f64 = 2, i64 = 3, u64 = 4 };

inline const char* dtype_name(DType d) {
    switch (d) {
        case DType::f32: return "f32";
        case DType::f64: return "f64";
        case DType::i64: return "i64";
        case DType::u64: return "u64";
    }
    return "?";
}
inline std::size_t dtype_size(DType d) { return (d == DType::f32) ? 4u : 8u; }

template <class T>
constexpr DType dtype_of() {
    if constexpr (std::is_same_v<T, float>) return DType::f32;
    else if constexpr (std::is_same_v<T, double>) return DType::f64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i64;
    else {
        static_assert(std::is_same_v<T, std::uint64_t>,
                      "persist state tensors hold float, double, std::int64_t or std::uint64_t");
        return DType::u64;
    }
}

/// One named piece of state: a dense, contiguous array of rank <= 4 (rank 0 = a scalar).
struct TensorRef {
    std::string name;
    DType dtype;
    void* data;
    int rank = 0;
    std::array<std::int64_t, 4> shape{1, 1, 1, 1};

    std::size_t numel() const {
        std::size_t n = 1;
        for (int i = 0; i < rank; ++i) n *= static_cast<std::size_t>(shape[i]);
        return n;
    }
    std::size_t bytes() const { return numel() * dtype_size(dtype); }
    std::string shape_string() const {
        std::string s = "[";
        for (int i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + "]";
    }
};

/// Describe a state tensor: `state_tensor("m", m.data(), {m.size()})`, or `{}` for a scalar.
template <class T>
TensorRef state_tensor(std::string name, T* data, std::initializer_list<std::int64_t> shape) {
    TensorRef t{std::move(name), dtype_of<std::remove_const_t<T>>(),
                const_cast<void*>(static_cast<const void*>(data))};
    t.rank = static_cast<int>(shape.size());
    int i = 0;
    for (auto s : shape) t.shape[static_cast<std::size_t>(i++)] = s;
    return t;
}

/// Visit a child's state with names prefixed by "<prefix>.".
template <class Child, class Visitor>
void visit_nested(Child& child, const std::string& prefix, Visitor&& v) {
    child.visit_state([&](TensorRef t) {
        t.name = prefix + "." + t.name;
        v(std::move(t));
    });
}

}  // namespace persist
