# Install rules, the exported package (zchan::zchan, zchan::core, zchan::asio) and a pkg-config
# file.
# Included by the top-level CMakeLists.txt when ZCHAN_INSTALL is on (default: top-level only).
# GNUInstallDirs is included at the top of CMakeLists.txt, because the targets' include
# directories already use CMAKE_INSTALL_INCLUDEDIR.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ZCHAN_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/zchan)

# Users see zchan::zchan (everything) and zchan::core (in-process only, no libzmq).
set_target_properties(zchan_core PROPERTIES EXPORT_NAME core)
set_target_properties(zchan PROPERTIES EXPORT_NAME zchan)

install(TARGETS zchan zchan_core
  EXPORT zchanTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The command-line tool goes next to the library (not part of the exported package).
if(TARGET zchan_tool)
  install(TARGETS zchan_tool RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/zchan
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT zchanTargets
  NAMESPACE zchan::
  FILE zchanTargets.cmake
  DESTINATION ${ZCHAN_CMAKE_INSTALL_DIR})

# zchan::asio in an export of its own: the package config loads it only where Asio is found
# (with the Findasio.cmake installed next to it), so zchan::zchan never needs Asio.
install(FILES ${PROJECT_SOURCE_DIR}/cmake/Findasio.cmake DESTINATION ${ZCHAN_CMAKE_INSTALL_DIR})
if(TARGET zchan_asio)
  set_target_properties(zchan_asio PROPERTIES EXPORT_NAME asio)
  install(TARGETS zchan_asio EXPORT zchanAsioTargets)
  install(EXPORT zchanAsioTargets
    NAMESPACE zchan::
    FILE zchanAsioTargets.cmake
    DESTINATION ${ZCHAN_CMAKE_INSTALL_DIR})
endif()

# The config only refers to files next to itself, so the same file serves the install tree and
# the build tree (find_package(zchan) with zchan_DIR=<build dir>).
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/zchanConfig.cmake.in
  ${PROJECT_BINARY_DIR}/zchanConfig.cmake
  INSTALL_DESTINATION ${ZCHAN_CMAKE_INSTALL_DIR})
# 0.x: a minor release may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/zchanConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/zchanConfig.cmake
  ${PROJECT_BINARY_DIR}/zchanConfigVersion.cmake
  DESTINATION ${ZCHAN_CMAKE_INSTALL_DIR})

# Build-tree export: a consumer can use this build directory without installing it.
export(EXPORT zchanTargets
  NAMESPACE zchan::
  FILE ${PROJECT_BINARY_DIR}/zchanTargets.cmake)
configure_file(${PROJECT_SOURCE_DIR}/cmake/Findasio.cmake ${PROJECT_BINARY_DIR}/Findasio.cmake
  COPYONLY)
if(TARGET zchan_asio)
  export(EXPORT zchanAsioTargets
    NAMESPACE zchan::
    FILE ${PROJECT_BINARY_DIR}/zchanAsioTargets.cmake)
endif()

# pkg-config: relocatable (prefix is found from the .pc file's own location), so that
# `cmake --install --prefix X` yields a working file for any X.
set(ZCHAN_PC_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${ZCHAN_PC_INSTALL_DIR}")
  set(ZCHAN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH ZCHAN_PC_UP "/${ZCHAN_PC_INSTALL_DIR}" "/")
  string(REGEX REPLACE "/$" "" ZCHAN_PC_UP "${ZCHAN_PC_UP}")
  set(ZCHAN_PC_PREFIX "\${pcfiledir}/${ZCHAN_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(ZCHAN_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(ZCHAN_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/zchan.pc.in ${PROJECT_BINARY_DIR}/zchan.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/zchan.pc DESTINATION ${ZCHAN_PC_INSTALL_DIR})
