// Consumer of the installed package: includes the umbrella header, uses the core API and the
// Thrust backend persist::persist was configured with, and checks known values.
// Exit code 0 = every check passed.
#include <persist/persist.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

#include <thrust/device_vector.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/transform.h>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    std::printf("  [%s] %s\n", ok ? " ok " : "FAIL", what.c_str());
    failures += ok ? 0 : 1;
}

// One counter-based stream per index: the sum is the same on any backend / thread count.
struct FirstDraw {
    std::uint64_t seed;
    PERSIST_HD std::uint64_t operator()(std::uint64_t stream) const {
        persist::Rng rng(seed, stream);
        return rng();
    }
};

}  // namespace

int main() {
    // Philox4x32-10 known answer (Random123 kat_vectors): key 0, counter 0 -> 0x6627e8d5 first.
    persist::Rng rng(0);
    const std::uint32_t first = rng();
    check(first == 0x6627e8d5u, "persist::Rng(0) first draw is the Philox4x32-10 KAT value");

    // The same streams on Thrust's device system (OMP by default) and on the host.
    const std::uint64_t n = 1000;
    thrust::device_vector<std::uint64_t> draws(n);
    thrust::transform(thrust::counting_iterator<std::uint64_t>(0),
                      thrust::counting_iterator<std::uint64_t>(n), draws.begin(), FirstDraw{7});
    const std::uint64_t device_sum = thrust::reduce(draws.begin(), draws.end(), std::uint64_t{0});
    std::uint64_t host_sum = 0;
    for (std::uint64_t s = 0; s < n; ++s) host_sum += FirstDraw{7}(s);
    check(device_sum == host_sum, "Thrust device backend reproduces the host draws");

    // Eigen through persist's types.
    persist::Mat<double> m = persist::Mat<double>::Identity(3, 3) * 2.0;
    check(m.trace() == 6.0, "persist::Mat<double> is an Eigen matrix");

    // Errors: one family, catchable as persist::Error.
    try {
        throw persist::ShapeError("consumer: expected 3 x 3");
    } catch (const persist::Error& e) {
        check(std::string(e.what()) == "consumer: expected 3 x 3", "persist::Error hierarchy");
    }

    std::printf("persist consumer: Thrust %d.%d.%d, device system %s: %s\n", THRUST_MAJOR_VERSION,
                THRUST_MINOR_VERSION, THRUST_SUBMINOR_VERSION,
                THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP   ? "OMP"
                : THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CPP ? "CPP"
                                                                   : "other",
                failures == 0 ? "all checks passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
