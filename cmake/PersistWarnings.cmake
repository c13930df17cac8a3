# Flags for the project's own targets (tests, examples, benchmarks, header and CUDA checks);
# never exported. Link `persist_dev_flags` PRIVATE next to persist::persist.
#
# Third-party headers reach these targets through IMPORTED targets (Eigen3::Eigen, xtensor,
# Boost::headers, ...) or from /usr/include, i.e. as system headers: -Werror applies to
# PERSIST's own headers and sources only.
add_library(persist_dev_flags INTERFACE)
target_compile_options(persist_dev_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
if(PERSIST_WERROR)
    target_compile_options(persist_dev_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
if(PERSIST_NATIVE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU"
   AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12 AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 12.3)
    # GCC 12.1/12.2 bug 105593: _mm512_undefined_*() (`__m512 __Y = __Y;`) in avx512fintrin.h
    # trips -Wuninitialized / -Wmaybe-uninitialized wherever Eigen's AVX-512 packet math
    # (psqrt, ...) is inlined into our code; being inlined, it escapes system-header
    # suppression. Only when -march=native enables AVX-512; fixed in GCC 12.3 and 13.
    include(CheckCXXSourceCompiles)
    set(CMAKE_REQUIRED_FLAGS -march=native)
    check_cxx_source_compiles("#ifndef __AVX512F__\n#error no AVX-512\n#endif\nint main() {}"
                              PERSIST_NATIVE_HAS_AVX512)
    unset(CMAKE_REQUIRED_FLAGS)
    if(PERSIST_NATIVE_HAS_AVX512)
        target_compile_options(persist_dev_flags INTERFACE
            $<$<COMPILE_LANGUAGE:CXX>:-Wno-uninitialized -Wno-maybe-uninitialized>)
    endif()
endif()
if(PERSIST_NATIVE)
    target_compile_options(persist_dev_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(PERSIST_SANITIZE)
    # -fno-sanitize-recover: every UBSan finding fails the test instead of only printing.
    target_compile_options(persist_dev_flags INTERFACE
        $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer
                                  -fno-sanitize-recover=all>)
    target_link_options(persist_dev_flags INTERFACE -fsanitize=address,undefined)
endif()
