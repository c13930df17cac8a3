include(CMakePackageConfigHelpers)
install(DIRECTORY include/persist DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS persist EXPORT persistTargets)
install(EXPORT persistTargets NAMESPACE persist:: DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/persist)
configure_package_config_file(cmake/persistConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/persistConfig.cmake
    INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/persist)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/persistConfigVersion.cmake
    COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/persistConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/persistConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/cmake/persist)
