# Install rules: headers, the exported persist::persist target and its package config.
# persistTargets.cmake refers to persist::thrust by name; persistConfig.cmake recreates that
# (non-exportable, IMPORTED) target with thrust_create_target before importing persist.
include(CMakePackageConfigHelpers)
set(PERSIST_INSTALL_CMAKEDIR ${CMAKE_INSTALL_DATADIR}/cmake/persist)  # header-only: arch-independent
install(DIRECTORY include/persist DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS persist EXPORT persistTargets)
install(EXPORT persistTargets NAMESPACE persist:: DESTINATION ${PERSIST_INSTALL_CMAKEDIR})
if(TARGET persist_yaml)
    install(TARGETS persist_yaml EXPORT persistYamlTargets)
    install(EXPORT persistYamlTargets NAMESPACE persist:: DESTINATION ${PERSIST_INSTALL_CMAKEDIR})
endif()
configure_package_config_file(cmake/persistConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/persistConfig.cmake
    INSTALL_DESTINATION ${PERSIST_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/persistConfigVersion.cmake
    COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/persistConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/persistConfigVersion.cmake
        DESTINATION ${PERSIST_INSTALL_CMAKEDIR})
