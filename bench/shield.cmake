# Rollout shield (issue 4, section 5): predictive check and full CEM projection at K = 32,
# h = 8, a 5-member ensemble of width 64 (x: 3, a: 2), per backend, next to Eigen's GEMM at
# the same shapes. `--threads=N` sets the OpenMP thread count (docs/shield.md has numbers).
add_executable(bench_shield ${CMAKE_CURRENT_SOURCE_DIR}/bench_shield.cpp)
target_link_libraries(bench_shield PRIVATE persist::persist persist_dev_flags benchmark::benchmark)
