# Tests that are not one-gtest-binary-per-file; included by tests/CMakeLists.txt.

# Packaging: install this build tree into a temporary prefix, then build and run a small
# find_package consumer against the install tree, against the build-tree export, and a
# pkg-config build. Needs the install rules, so only when ZCHAN_INSTALL is on.
if(ZCHAN_INSTALL)
  add_test(NAME packaging.find_package
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/packaging/run.sh
      --build-dir ${PROJECT_BINARY_DIR}
      --cmake ${CMAKE_COMMAND}
      --generator ${CMAKE_GENERATOR}
      --cxx ${CMAKE_CXX_COMPILER}
      --config $<CONFIG>
      --sanitize "${ZCHAN_SANITIZE}")
  math(EXPR zchan_packaging_timeout "300 * ${ZCHAN_TIMEOUT_SCALE}")
  set_tests_properties(packaging.find_package PROPERTIES
    LABELS integration
    TIMEOUT ${zchan_packaging_timeout}
    SKIP_RETURN_CODE 77)
endif()

# tests/integration/zchan_tool_test.cpp and the zchan_tool_*_test.cpp files beside it drive the
# real command-line tool.
foreach(zchan_tool_test_target integration_zchan_tool_test integration_zchan_tool_hub_test
    integration_zchan_tool_cli_test integration_zchan_tool_features_test)
  if(TARGET ${zchan_tool_test_target} AND TARGET zchan_tool)
    add_dependencies(${zchan_tool_test_target} zchan_tool)
  endif()
endforeach()

# The Python peer (python/, issue 14) against this build's hub, tools and examples: one CTest
# entry running its pytest suite. Runs under the sanitizer presets too: the C++ side is then
# sanitized while a second implementation of protocol.md drives it (about 20 s on dev).
# Debian's interpreter by default, which has python3-zmq and python3-pytest from apt.
if(ZCHAN_BUILD_TOOLS AND ZCHAN_BUILD_EXAMPLES)
  if(EXISTS /usr/bin/python3)
    set(zchan_default_python /usr/bin/python3)
  else()
    set(zchan_default_python python3)
  endif()
  set(ZCHAN_PYTHON ${zchan_default_python} CACHE STRING "Python 3 with pyzmq and pytest, for python_peer")
  math(EXPR zchan_python_wait "30 * ${ZCHAN_TIMEOUT_SCALE}")
  math(EXPR zchan_python_timeout "300 * ${ZCHAN_TIMEOUT_SCALE}")
  add_test(NAME python_peer
    COMMAND bash ${PROJECT_SOURCE_DIR}/python/tests/run.sh ${ZCHAN_PYTHON} ${PROJECT_BINARY_DIR}
      ${zchan_python_wait})
  set_tests_properties(python_peer PROPERTIES
    LABELS integration
    TIMEOUT ${zchan_python_timeout}
    SKIP_RETURN_CODE 77)
endif()

# tests/python/codec_echo: the C++ side of the Python peer's codec compatibility test.
if(ZCHAN_BUILD_TOOLS AND ZCHAN_BUILD_EXAMPLES)
  add_executable(python_codec_echo ${CMAKE_CURRENT_SOURCE_DIR}/python/codec_echo.cpp)
  set_target_properties(python_codec_echo PROPERTIES OUTPUT_NAME codec_echo
    RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/tests/python)
  target_link_libraries(python_codec_echo PRIVATE zchan::zchan)
  zchan_set_warnings(python_codec_echo)
endif()

# tests/integration/asio_examples_test.cpp runs the zchan::asio examples (examples/asio/).
if(TARGET integration_asio_examples_test AND ZCHAN_BUILD_EXAMPLES)
  add_dependencies(integration_asio_examples_test
    asio_producer_consumer asio_worker_pool asio_echo_server)
endif()
