# Every dependency of the persist INTERFACE target, found the same way here and in the
# installed persistConfig.cmake (cmake/persistConfig.cmake.in repeats these calls with
# find_dependency: change both together).
include(GNUInstallDirs)

if(NOT PERSIST_THRUST_DEVICE MATCHES "^(CPP|OMP)$")
    message(FATAL_ERROR "PERSIST_THRUST_DEVICE must be CPP or OMP, got '${PERSIST_THRUST_DEVICE}' "
                        "(CUDA builds use -DPERSIST_CUDA=ON, see docs/building.md)")
endif()

find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xtl REQUIRED)
find_package(xtensor REQUIRED)
find_package(xtensor-blas REQUIRED)
find_package(Boost 1.74 REQUIRED)            # Boost.Hana is header-only: Boost::headers
find_package(nlohmann_json 3.10 REQUIRED)
if(PERSIST_THRUST_DEVICE STREQUAL "OMP")
    find_package(OpenMP REQUIRED COMPONENTS CXX)
endif()

# Which Thrust host builds use, deterministically: the one a plain host install provides
# (Debian/Ubuntu libthrust-dev: /usr/share/cmake/thrust, Thrust 1.17), never the CUDA
# toolkit's CCCL just because nvcc happens to be on PATH. Without NO_SYSTEM_ENVIRONMENT_PATH,
# find_package turns the PATH entry /usr/local/cuda/bin into the prefix /usr/local/cuda and
# picks /usr/local/cuda/lib/cmake/thrust (CCCL 3.x) before /usr. Only that search step is
# dropped: -DThrust_DIR=..., Thrust_ROOT and CMAKE_PREFIX_PATH still select another Thrust.
# (The nvcc compile check, tests/cuda, uses the toolkit's own CCCL instead: see there.)
find_package(Thrust REQUIRED CONFIG NO_SYSTEM_ENVIRONMENT_PATH)
if(NOT TARGET persist::thrust)
    # Host builds run the rollout kernels on Thrust's OpenMP (default) or CPP device system.
    thrust_create_target(persist::thrust HOST CPP DEVICE ${PERSIST_THRUST_DEVICE})
endif()
message(STATUS "persist: Thrust ${Thrust_VERSION} from ${Thrust_DIR}, "
               "device system ${PERSIST_THRUST_DEVICE}")

# Everything but Thrust: the nvcc compile check links these and brings its own Thrust.
set(PERSIST_HEADER_DEPENDENCIES
    Eigen3::Eigen xtensor xtensor-blas Boost::headers nlohmann_json::nlohmann_json)

# yaml-cpp is a compiled library, so it is not a dependency of persist::persist: the optional
# INTERFACE target persist::yaml (config/yaml.hpp) links it when it is found.
find_package(yaml-cpp 0.6 CONFIG QUIET)
if(TARGET yaml-cpp::yaml-cpp)
    set(PERSIST_YAML_CPP_TARGET yaml-cpp::yaml-cpp)   # yaml-cpp >= 0.8
elseif(TARGET yaml-cpp)
    set(PERSIST_YAML_CPP_TARGET yaml-cpp)             # 0.6 / 0.7 (Debian 12)
else()
    set(PERSIST_YAML_CPP_TARGET "")
endif()
