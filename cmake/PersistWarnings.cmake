# Flags for the project's own targets (tests, examples, benchmarks); never exported.
add_library(persist_dev_flags INTERFACE)
target_compile_options(persist_dev_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic>)
if(PERSIST_NATIVE)
    target_compile_options(persist_dev_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(PERSIST_SANITIZE)
    target_compile_options(persist_dev_flags INTERFACE
        -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
    target_link_options(persist_dev_flags INTERFACE -fsanitize=address,undefined)
endif()
