# PERSIST_HEADER_CHECK: compile every public header alone, twice in one translation unit, with
# the project's warning flags. Catches headers that are not self-contained ("include what you
# use"), missing #pragma once, and warnings in headers no test happens to include.
# The header list is globbed here (a build check, not the library), re-globbed on every build.
file(GLOB_RECURSE _persist_headers CONFIGURE_DEPENDS RELATIVE "${PROJECT_SOURCE_DIR}/include"
     "${PROJECT_SOURCE_DIR}/include/persist/*.hpp")
list(SORT _persist_headers)
if(NOT TARGET persist_yaml)
    list(REMOVE_ITEM _persist_headers persist/config/yaml.hpp)
endif()
set(_persist_header_tus "")
foreach(h IN LISTS _persist_headers)
    string(MAKE_C_IDENTIFIER "${h}" id)
    set(tu "${PROJECT_BINARY_DIR}/header_check/${id}.cpp")
    # file(CONFIGURE) rewrites only on change, so unchanged TUs are not recompiled.
    file(CONFIGURE OUTPUT "${tu}" CONTENT "#include \"${h}\"\n#include \"${h}\"  // include guard\n")
    list(APPEND _persist_header_tus "${tu}")
endforeach()
add_library(persist_header_check OBJECT ${_persist_header_tus})
if(TARGET persist_yaml)
    target_link_libraries(persist_header_check PRIVATE persist::yaml persist_dev_flags)
else()
    target_link_libraries(persist_header_check PRIVATE persist::persist persist_dev_flags)
endif()
list(LENGTH _persist_headers _n)
message(STATUS "persist: header check compiles ${_n} headers on their own")
