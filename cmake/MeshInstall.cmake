# Installation: the public headers, the libraries, mesh-node and meshctl, a
# CMake package (find_package(mesh CONFIG) gives mesh::mesh and the layers
# under it) and a pkg-config file (mesh.pc).
#
# The libraries are installed as static archives (the default; nothing
# sets BUILD_SHARED_LIBS). Their interfaces are C++ classes with
# nlohmann::json and std types in them and no symbol visibility control,
# and the project promises no ABI yet (0.x), so a shared library would
# bring SONAME versioning and RPATH handling without a stable ABI to
# protect. The price of static archives: a consumer must link what they
# use privately too (libzmq, libsodium, yaml-cpp, spdlog). meshConfig.cmake
# finds all of them and mesh.pc lists them under Requires, not
# Requires.private, so a plain `pkg-config --libs mesh` links. The archives
# are not built with -fPIC: they go into programs, not into a consumer's
# shared library.
#
# A sanitized build (MESH_SANITIZE or MESH_TSAN) installs instrumented
# archives, which only link together with the sanitizer runtimes. Its
# package says so: every exported target carries the -fsanitize link flags
# in its INSTALL_INTERFACE and mesh.pc lists them under Libs. A plain
# build's package carries no sanitizer flag at all (the flags of the build
# itself are directory options, which are never exported).

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MESH_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mesh" CACHE STRING
    "Where meshConfig.cmake is installed, relative to the prefix")
set(MESH_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where mesh.pc is installed, relative to the prefix")

if(MESH_SANITIZE)
  set(MESH_INSTALL_SANITIZER_FLAGS -fsanitize=address -fsanitize=undefined)
elseif(MESH_TSAN)
  set(MESH_INSTALL_SANITIZER_FLAGS -fsanitize=thread)
else()
  set(MESH_INSTALL_SANITIZER_FLAGS "")
endif()

# The archives mesh.pc links, each before those it depends on:
#   admin_api -> metrics, mesh, admin;  metrics -> mesh, admin;  logging -> config;
#   mesh -> directory, link, config, policy, conversation, audit;  link -> swim, transport;
#   admin -> swim;  config -> swim_core, directory;  transport -> envelope;
#   swim -> swim_core;
#   swim_core, directory, policy, conversation, audit -> base.
set(MESH_PC_LIBRARIES
  mesh_admin_api mesh_metrics mesh_mesh mesh_logging mesh_admin mesh_link mesh_config mesh_policy mesh_conversation
  mesh_audit mesh_directory mesh_transport mesh_envelope mesh_swim mesh_swim_core mesh_base)
# What those archives use, by pkg-config name (Boost and msgpack-c are
# header-only and have no .pc; their headers are on the system path).
set(MESH_PC_REQUIRES
  "prometheus-cpp-core libzmq libsodium yaml-cpp spdlog nlohmann_json >= 3.10 CLI11")

# mesh_install_library(<target> <export-name>): installs the archive, exports
# it as mesh::<export-name> and adds the installed include directory to its
# usage requirements. The target's own include directories must be
# $<BUILD_INTERFACE:...> (a source path cannot be exported). A library of
# ours that an installed one links, even PRIVATE (a static archive's private
# dependencies are exported as $<LINK_ONLY:...>), must be installed too, or
# the generate step fails naming both; add it to MESH_PC_LIBRARIES as well.
function(mesh_install_library target export_name)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${export_name})
  foreach(flag IN LISTS MESH_INSTALL_SANITIZER_FLAGS)
    target_link_options(${target} INTERFACE "$<INSTALL_INTERFACE:${flag}>")
  endforeach()
  install(TARGETS ${target} EXPORT mesh-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  set_property(GLOBAL APPEND PROPERTY MESH_INSTALLED_LIBRARIES ${target})
endfunction()

# mesh_install_headers(<dir>): installs every header under <dir> (a
# component's include/ directory) to <prefix>/include, keeping the mesh/...
# layout. A directory rather than a list, so that a new public header is
# installed without anyone remembering to.
function(mesh_install_headers dir)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")
endfunction()

# mesh_install_package(): the export set, meshConfig.cmake,
# meshConfigVersion.cmake and mesh.pc. Called once, after every
# mesh_install_library().
function(mesh_install_package)
  get_property(installed GLOBAL PROPERTY MESH_INSTALLED_LIBRARIES)
  foreach(lib IN LISTS installed)
    if(NOT lib IN_LIST MESH_PC_LIBRARIES)
      message(FATAL_ERROR "install: ${lib} is installed but not linked by mesh.pc: "
                          "add it to MESH_PC_LIBRARIES in cmake/MeshInstall.cmake")
    endif()
  endforeach()
  install(EXPORT mesh-targets NAMESPACE mesh:: FILE meshTargets.cmake
    DESTINATION ${MESH_INSTALL_CMAKEDIR})

  # meshConfig.cmake.in reads MESH_INSTALL_SANITIZER_FLAGS (informative:
  # the targets already carry the flags).
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/meshConfig.cmake.in
    ${PROJECT_BINARY_DIR}/cmake/meshConfig.cmake
    INSTALL_DESTINATION ${MESH_INSTALL_CMAKEDIR})
  # 0.x: a new minor version may break the API.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/meshConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/meshConfig.cmake
                ${PROJECT_BINARY_DIR}/cmake/meshConfigVersion.cmake
    DESTINATION ${MESH_INSTALL_CMAKEDIR})

  # mesh.pc finds the prefix from its own location, so that
  # `cmake --install --prefix <elsewhere>` yields a working file.
  if(IS_ABSOLUTE "${MESH_INSTALL_PKGCONFIGDIR}")
    set(MESH_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    file(RELATIVE_PATH rel "/prefix/${MESH_INSTALL_PKGCONFIGDIR}" "/prefix")
    string(REGEX REPLACE "/$" "" rel "${rel}")
    set(MESH_PC_PREFIX "\${pcfiledir}/${rel}")
  endif()
  foreach(dir LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
      set(MESH_PC_${dir} "${CMAKE_INSTALL_${dir}}")
    else()
      set(MESH_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
    endif()
  endforeach()
  # A static link needs each archive before the archives it uses.
  set(libs "")
  foreach(lib IN LISTS MESH_PC_LIBRARIES)
    string(APPEND libs " -l${lib}")
  endforeach()
  string(APPEND libs " -pthread")
  # mesh_swim opens libcrypto with dlopen when a gossip key is used.
  foreach(lib IN LISTS CMAKE_DL_LIBS)
    string(APPEND libs " -l${lib}")
  endforeach()
  foreach(flag IN LISTS MESH_INSTALL_SANITIZER_FLAGS)
    string(APPEND libs " ${flag}")
  endforeach()
  set(MESH_PC_LIBS "${libs}")
  configure_file(${PROJECT_SOURCE_DIR}/cmake/mesh.pc.in ${PROJECT_BINARY_DIR}/cmake/mesh.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/cmake/mesh.pc DESTINATION ${MESH_INSTALL_PKGCONFIGDIR})
endfunction()
