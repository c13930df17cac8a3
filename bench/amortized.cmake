# One amortized-shield decision vs one search decision (mock searches for now; see the file
# comment of bench_amortized.cpp). Shares the analytic mock with the tests.
add_executable(bench_amortized ${CMAKE_CURRENT_LIST_DIR}/bench_amortized.cpp)
target_include_directories(bench_amortized PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../tests/shield/amortized)
target_link_libraries(bench_amortized PRIVATE persist::persist persist_dev_flags benchmark::benchmark)
