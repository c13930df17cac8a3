# cmake -DPERSIST_INCLUDE_DIR=<repo>/include -P CheckUmbrella.cmake
# Fails when a header under include/persist/ is not #included by include/persist/persist.hpp.
# The umbrella is written by hand on purpose (no globbing in the library); this check (CTest:
# persist_umbrella_complete) is what keeps it complete when a module adds a header.
if(NOT PERSIST_INCLUDE_DIR)
    message(FATAL_ERROR "usage: cmake -DPERSIST_INCLUDE_DIR=<repo>/include -P CheckUmbrella.cmake")
endif()
get_filename_component(PERSIST_INCLUDE_DIR "${PERSIST_INCLUDE_DIR}" ABSOLUTE)
set(umbrella "${PERSIST_INCLUDE_DIR}/persist/persist.hpp")
file(READ "${umbrella}" text)
file(GLOB_RECURSE headers RELATIVE "${PERSIST_INCLUDE_DIR}" "${PERSIST_INCLUDE_DIR}/persist/*.hpp")
list(SORT headers)
# config/yaml.hpp needs the compiled yaml-cpp (persist::yaml), so the umbrella leaves it out.
list(REMOVE_ITEM headers "persist/config/yaml.hpp")
set(missing "")
foreach(h IN LISTS headers)
    if(h STREQUAL "persist/persist.hpp")
        continue()
    endif()
    string(REPLACE "." "\\." re "${h}")
    if(NOT text MATCHES "\n[ \t]*#[ \t]*include[ \t]*[\"<]${re}[\">]")
        list(APPEND missing "${h}")
    endif()
endforeach()
list(LENGTH headers n)
if(missing)
    list(JOIN missing "\n  " m)
    message(FATAL_ERROR "${umbrella} does not include these public headers "
                        "(add an #include line for each):\n  ${m}")
endif()
message(STATUS "persist.hpp includes all ${n} public headers")
