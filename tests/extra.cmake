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

# tests/integration/zchan_tool_test.cpp drives the real command-line tool.
if(TARGET integration_zchan_tool_test AND TARGET zchan_tool)
  add_dependencies(integration_zchan_tool_test zchan_tool)
endif()

# tests/integration/asio_examples_test.cpp runs the zchan::asio examples (examples/asio/).
if(TARGET integration_asio_examples_test AND ZCHAN_BUILD_EXAMPLES)
  add_dependencies(integration_asio_examples_test
    asio_producer_consumer asio_worker_pool asio_echo_server)
endif()
