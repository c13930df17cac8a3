/// @file bench_sac.cpp
/// One SAC update (persist::agents::SAC<float>::update: TD target, twin-critic loss and step,
/// actor loss through both critics and step, alpha step, Polyak averaging of both targets) on a
/// fixed batch. Observation 32 (internal 0), action 2, two hidden layers of H, batch B, float.
/// bench/reference/torch_sac.py times the same update in PyTorch; scripts/bench_sac.sh runs both
/// and prints the ratio per shape (docs/benchmarks.md).
///
/// `--threads=N` / PERSIST_BENCH_THREADS (default 1) sets SACOptions::threads (N >= 2: the twin
/// critics and the actor's two forwards on two threads, bitwise the same result) and
/// Eigen::setNbThreads; nn's GEMMs are single-threaded either way (docs/nn.md).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "persist/agents/sac.hpp"
#include "persist/core/random.hpp"
#include "persist/core/records.hpp"

namespace {

using persist::Index;
using persist::Vec;

constexpr Index kObs = 32;
constexpr Index kAct = 2;

persist::TransitionBatch<float> make_batch(Index B) {
    persist::Rng rng(7);
    persist::TransitionBatch<float> b;
    b.resize(kObs, 0, kAct, 0, B);
    auto fill = [&](auto& m, float lo, float hi) {
        for (Index k = 0; k < m.size(); ++k) m.data()[k] = rng.uniform<float>(lo, hi);
    };
    fill(b.observation, -1, 1);
    fill(b.next_observation, -1, 1);
    fill(b.action, -1, 1);
    fill(b.reward, -1, 0);
    b.terminated.setZero();
    b.truncated.setZero();
    return b;
}

int g_threads = 1;

void BM_SacUpdate(benchmark::State& state) {
    const Index H = state.range(0), B = state.range(1);
    persist::agents::SACOptions opt;
    opt.hidden = {H, H};
    opt.threads = g_threads;
    persist::agents::SAC<float> sac(kObs, 0, Vec<float>::Constant(kAct, -1.0f),
                                    Vec<float>::Constant(kAct, 1.0f), opt);
    const auto batch = make_batch(B);
    sac.update(batch);  // shape the workspaces
    for (auto _ : state) {
        const auto st = sac.update(batch);
        benchmark::DoNotOptimize(st);
        benchmark::ClobberMemory();
    }
    state.counters["updates/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["params"] = static_cast<double>(sac.actor().param_count() + 2 * sac.q1().param_count());
    state.counters["threads"] = static_cast<double>(opt.threads);
}

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
        std::fprintf(stderr, "bench_sac: thread count must be >= 1, got %d\n", threads);
        return 2;
    }
    Eigen::setNbThreads(threads);
    g_threads = threads;
    // "min" joins mean/median/stddev with --benchmark_repetitions: the least disturbed
    // repetition, for machines shared with other work.
    const auto min_stat = [](const std::vector<double>& v) {
        return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
    };
    for (const auto& [H, B] : std::vector<std::pair<Index, Index>>{{256, 256}, {64, 64}})
        benchmark::RegisterBenchmark("BM_SacUpdate", BM_SacUpdate)
            ->ArgNames({"H", "B"})
            ->Args({H, B})
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond)
            ->ComputeStatistics("min", min_stat);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("persist_threads", std::to_string(g_threads));
    benchmark::AddCustomContext("shape", "obs 32, internal 0, action 2, hidden H x 2, batch B, float");
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
