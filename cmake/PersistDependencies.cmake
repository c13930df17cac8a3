# Every dependency of the persist INTERFACE target, found the same way here and in the
# installed persistConfig.cmake (which repeats these calls with find_dependency).
include(GNUInstallDirs)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xtl REQUIRED)
find_package(xtensor REQUIRED)
find_package(xtensor-blas REQUIRED)
find_package(Boost 1.74 REQUIRED)            # Boost.Hana is header-only: Boost::headers
find_package(nlohmann_json 3.10 REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Thrust REQUIRED CONFIG)
if(NOT TARGET PersistThrust)
    # Host builds run the rollout kernels on Thrust's OpenMP (default) or CPP device system.
    thrust_create_target(PersistThrust HOST CPP DEVICE ${PERSIST_THRUST_DEVICE})
endif()
