# Third-party dependencies, all from Debian packages (or the GPU machine's own builds).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(Torch REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Boost REQUIRED)
find_package(CLI11 QUIET)

# Cluster mode (issue 18): Redis Streams through hiredis (Debian libhiredis-dev).
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)

pkg_check_modules(FFMPEG REQUIRED IMPORTED_TARGET
  libavformat libavcodec libavutil libswscale libswresample)

set(HEYGEM_HAVE_SYSTEMD OFF)
if(HEYGEM_WITH_SYSTEMD)
  pkg_check_modules(SYSTEMD IMPORTED_TARGET libsystemd)
  if(SYSTEMD_FOUND)
    set(HEYGEM_HAVE_SYSTEMD ON)
  endif()
endif()
message(STATUS "heygem: libsystemd support: ${HEYGEM_HAVE_SYSTEMD}")

# Torch's exported flags are heavy; wrap them once in an interface target.
add_library(heygem_torch INTERFACE)
target_link_libraries(heygem_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(heygem_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})

# PyTorch wheels (2.x) ship their own fmt headers in torch/include. That folder comes before
# /usr/include on the command line, so spdlog built against the system fmt (SPDLOG_FMT_EXTERNAL) would
# compile against torch's fmt instead and fail. Torch's public headers do not use fmt, so every heygem
# target gets a one-entry folder that points <fmt/...> back at the system's copy (-I beats -isystem).
set(HEYGEM_SYSTEM_FMT_SHIM "")
foreach(torch_include_dir IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${torch_include_dir}/fmt/core.h")
    find_path(HEYGEM_SYSTEM_FMT_INCLUDE fmt/core.h NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH NO_PACKAGE_ROOT_PATH)
    if(HEYGEM_SYSTEM_FMT_INCLUDE AND NOT HEYGEM_SYSTEM_FMT_INCLUDE STREQUAL torch_include_dir)
      set(HEYGEM_SYSTEM_FMT_SHIM "${CMAKE_BINARY_DIR}/system-fmt")
      file(MAKE_DIRECTORY "${HEYGEM_SYSTEM_FMT_SHIM}")
      file(CREATE_LINK "${HEYGEM_SYSTEM_FMT_INCLUDE}/fmt" "${HEYGEM_SYSTEM_FMT_SHIM}/fmt" SYMBOLIC)
      message(STATUS "heygem: torch ships fmt in ${torch_include_dir}; using the system fmt from ${HEYGEM_SYSTEM_FMT_INCLUDE}")
    endif()
    break()
  endif()
endforeach()

# yaml-cpp's target name differs between 0.7 (Debian) and 0.8.
if(TARGET yaml-cpp::yaml-cpp)
  set(HEYGEM_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(HEYGEM_YAML_TARGET yaml-cpp)
endif()

# CLI11 is header-only; Debian ships a CMake config, other machines may only have the header.
if(NOT TARGET CLI11::CLI11)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp)
  if(CLI11_INCLUDE_DIR)
    add_library(CLI11::CLI11 INTERFACE IMPORTED)
    target_include_directories(CLI11::CLI11 INTERFACE ${CLI11_INCLUDE_DIR})
  else()
    message(FATAL_ERROR "CLI11 not found (Debian: libcli11-dev)")
  endif()
endif()
