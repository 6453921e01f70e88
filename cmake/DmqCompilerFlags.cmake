# Warning and sanitizer flags applied to every target of the project
# (library, tests, benchmarks, examples).

add_compile_options(-Wall -Wextra)
if(DMQ_WERROR)
  add_compile_options(-Werror)
endif()

set(DMQ_SANITIZE_FLAGS "")
if(DMQ_SANITIZE)
  set(DMQ_SANITIZE_FLAGS
    -fsanitize=address,undefined
    -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  add_compile_options(${DMQ_SANITIZE_FLAGS})
  add_link_options(${DMQ_SANITIZE_FLAGS})
endif()
