# shield/: rollout kernels (parallel/) against references and across backends; the rollout
# shield (check, CEM and gradient projection, determinism, threads, errors) and the property
# test with GridLife's known dynamics; allocation counting (replaces operator new, so its own
# executable).
persist_add_test(test_shield_kernels shield/test_kernels.cpp shield/test_lanes.cpp)
persist_add_test(test_shield shield/test_shield.cpp shield/test_property.cpp)
persist_add_test(test_shield_alloc shield/test_alloc.cpp env/alloc_counter.cpp)
# LearnedShield: the shield with the models it trains, on GridLife random-play data.
persist_add_test(test_shield_learned shield/test_learned_shield.cpp)
# The amortized shield (safety network, seed Change 3).
include(${CMAKE_CURRENT_LIST_DIR}/amortized.cmake)
