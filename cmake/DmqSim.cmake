# dmq_sim: static library of the simulator helpers, built from every
# tests/sim/*.c whose name does NOT start with test_ (those are tests).
# Created only when such files exist (and not DMQ_CORE_ONLY); tests,
# benchmarks and tools/dmq-sim link it when
# `TARGET dmq_sim` is true.

if(TARGET dmq_sim)
  return()
endif()
if(DMQ_CORE_ONLY) # tools/dmq-sim needs it whenever the runtime is built
  return()
endif()

file(GLOB _dmq_sim_all CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/sim/*.c")
set(DMQ_SIM_SOURCES "")
foreach(_f IN LISTS _dmq_sim_all)
  get_filename_component(_n "${_f}" NAME)
  if(NOT _n MATCHES "^test_")
    list(APPEND DMQ_SIM_SOURCES "${_f}")
  endif()
endforeach()
list(SORT DMQ_SIM_SOURCES)

if(DMQ_SIM_SOURCES)
  add_library(dmq_sim STATIC ${DMQ_SIM_SOURCES})
  target_include_directories(dmq_sim PUBLIC
    "${PROJECT_SOURCE_DIR}/tests/sim"
    "${PROJECT_SOURCE_DIR}/src"
    "${PROJECT_SOURCE_DIR}/transports")
  find_package(Threads REQUIRED) # lanes (opts.lanes) run on threads
  target_link_libraries(dmq_sim PUBLIC dmq_static m Threads::Threads)
endif()
