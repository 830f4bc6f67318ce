# Third-party dependencies, all from Debian packages (or the GPU machine's own builds).
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(Torch REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(Boost REQUIRED)
find_package(CLI11 QUIET)

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
