# ZCHAN_SANITIZE applies to everything built in this tree (library, tests,
# examples) because ASan and TSan need every translation unit instrumented.
if(ZCHAN_SANITIZE)
  add_compile_options(-fsanitize=${ZCHAN_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${ZCHAN_SANITIZE})
  if(ZCHAN_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=all)
  endif()
  add_compile_definitions(ZCHAN_SANITIZED=1)
endif()
