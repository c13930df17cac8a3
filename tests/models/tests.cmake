# models/: the internal model ensemble f_theta and known dynamics, the viability approximator
# V_psi (+ checkpoint round trip of both), and demonstrations (file formats and their errors).
persist_add_test(test_models_ensemble models/test_ensemble.cpp)
persist_add_test(test_models_approximator models/test_approximator.cpp)
persist_add_test(test_models_state_estimator models/test_state_estimator.cpp)
persist_add_test(test_models_demonstrations models/test_demonstrations.cpp)
target_compile_definitions(test_models_demonstrations PRIVATE
    PERSIST_MODELS_DATA_DIR="${CMAKE_CURRENT_SOURCE_DIR}/models/data")
# operator new replaced (env/alloc_counter.cpp): its own executable.
persist_add_test(test_models_alloc models/test_alloc.cpp env/alloc_counter.cpp)
# ExtendedKalmanFilter, AnyStateEstimator and the StateEstimator concepts.
persist_add_test(test_models_kalman_filter models/test_kalman_filter.cpp)
