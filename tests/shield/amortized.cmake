# Amortized shield (shield/amortized_shield.hpp, seed "Change 3"), against an analytic mock
# search shield: concept walls, option/shape errors, search/amortized mode logic and counters,
# MSE gradient vs finite differences, learning the projection over 3 seeds, safety of every
# returned action, determinism, checkpoint round trip. The allocation test replaces operator
# new, so it is its own executable. Paths are relative to this file so it can be included
# from anywhere (tests/shield/tests.cmake).
persist_add_test(test_shield_amortized ${CMAKE_CURRENT_LIST_DIR}/amortized/test_amortized.cpp)
persist_add_test(test_shield_amortized_alloc ${CMAKE_CURRENT_LIST_DIR}/amortized/test_amortized_alloc.cpp
                 ${CMAKE_CURRENT_LIST_DIR}/../env/alloc_counter.cpp)
