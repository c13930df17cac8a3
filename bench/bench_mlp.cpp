/// @file bench_mlp.cpp
/// MLP training step (forward + backward writing fresh gradients) in GFLOP/s, with two ceilings measured in
/// the same run: Eigen's raw 256^3 SGEMM and the core's FMA peak. bench/reference/torch_mlp.py
/// times the same step in PyTorch; scripts/bench_mlp.sh runs both and prints the ratio
/// (docs/benchmarks.md).
///
/// Threads: `--threads=N` or PERSIST_BENCH_THREADS (default 1) sets the network's
/// MLPOptions::threads (N >= 2: column and row blocks on OpenMP threads, bitwise the serial
/// result; docs/nn.md) and Eigen::setNbThreads (the SGEMM ceiling); written to the JSON context
/// as `persist_threads`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Core>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "persist/core/random.hpp"
#include "persist/core/types.hpp"
#include "persist/nn/mlp.hpp"

namespace {

using persist::Index;
using persist::Mat;

constexpr Index kIn = 32;
constexpr Index kOut = 8;

/// FLOPs of one step for input 32 -> H -> H -> 8, counting GEMMs only (2 flops per MAC):
/// forward and dW of all three layers, dX of layers 2 and 3 (the input needs no gradient).
/// Bias, ReLU and zero_grad are O(B H) and not counted, as in the PyTorch reference.
double step_flops(Index H, Index B) {
    const double h = static_cast<double>(H), b = static_cast<double>(B);
    const double macs_all = kIn * h + h * h + kOut * h;  // per sample, all three layers
    const double macs_dx = h * h + kOut * h;             // per sample, layers 2 and 3
    return 2.0 * b * (2.0 * macs_all + macs_dx);
}

int g_threads = 1;

void BM_MlpStep(benchmark::State& state) {
    const Index H = state.range(0), B = state.range(1);
    persist::nn::MLP<float> net({kIn, H, H, kOut}, persist::nn::MLPOptions{.threads = g_threads});
    persist::Rng rng(42);
    net.init(rng);
    auto ws = net.make_workspace();
    // Fixed input and upstream gradient, as in the PyTorch reference (any values will do:
    // the work does not depend on them).
    const Mat<float> x = Mat<float>::Random(kIn, B);
    const Mat<float> g = Mat<float>::Random(kOut, B);
    for (auto _ : state) {
        const Mat<float>& y = net.forward(x, ws);
        benchmark::DoNotOptimize(y.data());
        // Parameter gradients written (GradMode::overwrite = zero_grad + accumulate in one pass,
        // as PyTorch's zero_grad(set_to_none=True) + backward), no input gradient.
        net.backward(ws, g, nullptr, true, persist::nn::GradMode::overwrite);
        benchmark::DoNotOptimize(net.grads().data());
        benchmark::ClobberMemory();
    }
    state.counters["FLOP/s"] =
        benchmark::Counter(step_flops(H, B), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["flops_per_iter"] = step_flops(H, B);
    state.counters["threads"] = static_cast<double>(net.threads());
}

/// Ceiling 1: Eigen's own SGEMM at N^3 with the same flags and thread count.
void BM_EigenSgemm(benchmark::State& state) {
    const Index n = state.range(0);
    const Mat<float> a = Mat<float>::Random(n, n), b = Mat<float>::Random(n, n);
    Mat<float> c(n, n);
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    const double flops = 2.0 * static_cast<double>(n) * n * n;
    state.counters["FLOP/s"] =
        benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["flops_per_iter"] = flops;
    state.counters["threads"] = Eigen::nbThreads();
}

#if defined(__AVX512F__) || defined(__FMA__)
/// Ceiling 2: one core's FMA throughput (16 independent accumulator chains, enough to cover
/// FMA latency x ports on current x86 cores). Per thread; the widest vectors -march=native has.
void BM_FmaPeak(benchmark::State& state) {
#if defined(__AVX512F__)
    using V = __m512;
    constexpr int kLanes = 16;
    const auto set1 = [](float v) { return _mm512_set1_ps(v); };
    const auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
#else
    using V = __m256;
    constexpr int kLanes = 8;
    const auto set1 = [](float v) { return _mm256_set1_ps(v); };
    const auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
#endif
    constexpr int kChains = 16, kSteps = 256;
    const V m = set1(0.999999f), c = set1(1e-7f);
    V acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = set1(static_cast<float>(i));
    for (auto _ : state) {
        for (int s = 0; s < kSteps; ++s)
            for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], m, c);
        benchmark::DoNotOptimize(acc);
    }
    const double flops = 2.0 * kLanes * kChains * kSteps;
    state.counters["FLOP/s"] =
        benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["flops_per_iter"] = flops;
    state.counters["vector_bits"] = 32.0 * kLanes;
}
#endif

/// --threads=N / --threads N (removed from argv before Google Benchmark parses it), else
/// PERSIST_BENCH_THREADS, else 1.
int take_threads(int& argc, char** argv) {
    int threads = 1;
    if (const char* env = std::getenv("PERSIST_BENCH_THREADS")) threads = std::atoi(env);
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strncmp(argv[i], "--threads=", 10) == 0) {
            threads = std::atoi(argv[i] + 10);
        } else if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    return threads;
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = take_threads(argc, argv);
    if (threads < 1) {
        std::fprintf(stderr, "bench_mlp: thread count must be >= 1, got %d\n", threads);
        return 2;
    }
    Eigen::setNbThreads(threads);
    g_threads = threads;

    // Rates per wall-clock second (OpenMP workers are not in the main thread's CPU time). With
    // --benchmark_repetitions, "min" joins mean/median/stddev/cv: the least disturbed
    // repetition, for machines shared with other work.
    const auto min_stat = [](const std::vector<double>& v) {
        return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
    };
    for (Index H : {64, 256})
        for (Index B : {1, 32, 256})
            benchmark::RegisterBenchmark("BM_MlpStep", BM_MlpStep)
                ->ArgNames({"H", "B"})
                ->Args({H, B})
                ->UseRealTime()
                ->ComputeStatistics("min", min_stat);
    benchmark::RegisterBenchmark("BM_EigenSgemm", BM_EigenSgemm)
        ->ArgName("N")
        ->Arg(256)
        ->UseRealTime()
        ->ComputeStatistics("min", min_stat);
#if defined(__AVX512F__) || defined(__FMA__)
    benchmark::RegisterBenchmark("BM_FmaPeak", BM_FmaPeak)
        ->UseRealTime()
        ->ComputeStatistics("min", min_stat);
#endif

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("persist_threads", std::to_string(Eigen::nbThreads()));
    benchmark::AddCustomContext("eigen_version", std::to_string(EIGEN_WORLD_VERSION) + "." +
                                                     std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                                     std::to_string(EIGEN_MINOR_VERSION));
#if defined(_OPENMP)
    benchmark::AddCustomContext("openmp", std::to_string(_OPENMP));
#else
    benchmark::AddCustomContext("openmp", "off");
#endif
#if defined(__AVX512F__)
    benchmark::AddCustomContext("simd", "avx512f");
#elif defined(__AVX2__)
    benchmark::AddCustomContext("simd", "avx2");
#else
    benchmark::AddCustomContext("simd", "other");
#endif
#if defined(__VERSION__)
    benchmark::AddCustomContext("compiler", __VERSION__);
#endif
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
