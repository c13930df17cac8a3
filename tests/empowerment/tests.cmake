# empowerment/: InfoNCE k-step empowerment (intrinsic/empowerment.hpp). One executable: the
# critic's gradient vs finite differences, the estimator's formulas, k-step windows and sequence
# training, checkpoints, allocation counting (intrinsic/alloc_counter.cpp replaces operator new
# for the whole executable, counting only on request), and learning on synthetic environments
# over 3 seeds.
persist_add_test(test_intrinsic_empowerment empowerment/test_empowerment.cpp empowerment/test_empowerment_alloc.cpp
                 empowerment/test_empowerment_learning.cpp intrinsic/alloc_counter.cpp)
