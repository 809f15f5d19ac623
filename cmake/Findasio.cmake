# Finds standalone Asio (Debian: libasio-dev), which ships no CMake package of its own.
# Provides asio::asio (header-only; needs Threads) and asio_FOUND, asio_VERSION, asio_INCLUDE_DIR.
# Installed next to zchanConfig.cmake: the package config uses it for zchan::asio.
find_path(asio_INCLUDE_DIR NAMES asio.hpp asio/version.hpp)
if(asio_INCLUDE_DIR AND EXISTS "${asio_INCLUDE_DIR}/asio/version.hpp")
  # ASIO_VERSION is XXYYZZ: major * 100000 + minor * 100 + patch.
  file(STRINGS "${asio_INCLUDE_DIR}/asio/version.hpp" asio_version_line
       REGEX "^#define ASIO_VERSION [0-9]+")
  string(REGEX MATCH "[0-9]+" asio_version_number "${asio_version_line}")
  math(EXPR asio_major "${asio_version_number} / 100000")
  math(EXPR asio_minor "${asio_version_number} / 100 % 1000")
  math(EXPR asio_patch "${asio_version_number} % 100")
  set(asio_VERSION "${asio_major}.${asio_minor}.${asio_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(asio REQUIRED_VARS asio_INCLUDE_DIR VERSION_VAR asio_VERSION)
mark_as_advanced(asio_INCLUDE_DIR)

if(asio_FOUND AND NOT TARGET asio::asio)
  find_package(Threads REQUIRED)
  add_library(asio::asio INTERFACE IMPORTED)
  set_target_properties(asio::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${asio_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS ASIO_STANDALONE
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
