# Shared compile settings for the project's own targets.

if(MESH_SANITIZE AND MESH_TSAN)
  message(FATAL_ERROR "MESH_SANITIZE and MESH_TSAN cannot be combined")
endif()
if(MESH_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(MESH_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# msgpack-c is header-only; we use it without Boost so that the SWIM core
# depends on nothing but the standard library and msgpack-c.
find_path(MESH_MSGPACK_INCLUDE_DIR msgpack.hpp REQUIRED)
add_library(mesh_msgpack INTERFACE)
target_include_directories(mesh_msgpack SYSTEM INTERFACE ${MESH_MSGPACK_INCLUDE_DIR})
target_compile_definitions(mesh_msgpack INTERFACE MSGPACK_NO_BOOST MSGPACK_DEFAULT_API_VERSION=3)
add_library(mesh::msgpack ALIAS mesh_msgpack)

# mesh_target_defaults(<target>): warnings for code we own; errors too with
# MESH_WERROR (CI turns it on, see tools/test.sh).
function(mesh_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                           -Wno-sign-conversion -Wnon-virtual-dtor)
  # GCC 12 at -O3 (Release) reports -Wrestrict on ordinary std::string code
  # inside libstdc++'s own inlined memcpy: a one-character literal assigned
  # to a string (s = "a"), or a literal prepended to a temporary string
  # ("n" + std::to_string(i)). The overlap it describes cannot happen (sizes
  # near 2^63 at negative offsets): GCC bugs 105329 and 105651. The
  # warning is off for GCC 12 only, rather than rewriting every such string
  # in the tests; Clang and other GCC releases keep checking.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(MESH_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# What the pure layers (mesh_base, the SWIM core) may not include: no
# sockets, threads, OS randomness (<random>), Asio, ZeroMQ or logging library.
set(MESH_PURE_FORBIDDEN
  "boost" "asio" "zmq" "spdlog" "fmt/" "<thread>" "<mutex>" "<random>" "sys/socket" "netinet")

# mesh_forbid_includes(<dir> <regex>...): fail configuration when a source
# file in <dir> includes a header matching one of the patterns. This is
# how the SWIM core is kept away from Asio, ZeroMQ and spdlog: the system
# include path holds them all, so only a check can keep them out.
# Only the files directly in <dir> are checked: subdirectories may hold
# other targets.
function(mesh_forbid_includes dir)
  file(GLOB files LIST_DIRECTORIES false "${dir}/*.hpp" "${dir}/*.cpp" "${dir}/*.h")
  foreach(f IN LISTS files)
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include")
    foreach(line IN LISTS lines)
      foreach(pattern IN LISTS ARGN)
        if(line MATCHES "${pattern}")
          message(FATAL_ERROR "layering: ${f} must not include '${line}' (matches ${pattern})")
        endif()
      endforeach()
    endforeach()
  endforeach()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${files})
endfunction()

# mesh_add_component(<target> EXPORT <name> SOURCES <file>...): the library
# of one component folder, the same way for each: its sources, the alias
# mesh::<name>, include/ as its public include directory and src/ as a
# private one (for the component's private headers), the project's
# warnings (mesh_target_defaults), and its installation as mesh::<name>
# with every header under include/ (cmake/MeshInstall.cmake). What the
# component links and defines stays in its own CMakeLists.txt.
function(mesh_add_component target)
  cmake_parse_arguments(arg "" "EXPORT" "SOURCES" ${ARGN})
  if(NOT arg_EXPORT OR NOT arg_SOURCES OR arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "mesh_add_component(${target} EXPORT <name> SOURCES <file>...)")
  endif()
  add_library(${target} ${arg_SOURCES})
  add_library(mesh::${arg_EXPORT} ALIAS ${target})
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  mesh_target_defaults(${target})
  mesh_install_library(${target} ${arg_EXPORT})
  mesh_install_headers(${CMAKE_CURRENT_SOURCE_DIR}/include)
endfunction()
