// nvcc compile check (PERSIST_CUDA=ON): the whole library must compile under nvcc with
// Thrust's CUDA device backend, and PERSIST_HD code must be callable from device kernels.
// Built, never run: CI machines have nvcc but no GPU.
#include <persist/persist.hpp>

#include <cstdint>

#include <thrust/device_vector.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/transform.h>

static_assert(THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA,
              "the nvcc compile check must exercise Thrust's CUDA backend");
static_assert(THRUST_MAJOR_VERSION >= 2,
              "expected the CUDA toolkit's CCCL Thrust, not a host-only Thrust 1.x");

namespace {

// The trivial kernel: y = a * x.
struct Scale {
    float a;
    __host__ __device__ float operator()(float x) const { return a * x; }
};

// What rollout kernels do: one counter-based stream per rollout index, so results do not
// depend on how the device schedules threads (core/random.hpp).
struct NoisyReturn {
    std::uint64_t seed;
    __host__ __device__ float operator()(std::uint64_t rollout) const {
        persist::Rng rng(seed, rollout);
        return rng.uniform<float>(-1.0f, 1.0f) + 0.1f * rng.normal<float>() +
               static_cast<float>(rng.below(4));
    }
};

}  // namespace

int main() {
    thrust::device_vector<float> x(1024, 1.0f), y(1024);
    thrust::transform(x.begin(), x.end(), y.begin(), Scale{2.0f});

    thrust::device_vector<float> returns(256);
    thrust::transform(thrust::counting_iterator<std::uint64_t>(0),
                      thrust::counting_iterator<std::uint64_t>(returns.size()), returns.begin(),
                      NoisyReturn{42});
    const float total = thrust::reduce(returns.begin(), returns.end(), 0.0f) +
                        thrust::reduce(y.begin(), y.end(), 0.0f);
    return total > 0.0f ? 0 : 1;
}
