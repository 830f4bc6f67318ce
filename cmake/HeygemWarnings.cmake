# heygem_target_defaults(TARGET): warnings and sanitizers for the project's own code.
function(heygem_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-unused-parameter)
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
  if(HEYGEM_SYSTEM_FMT_SHIM)
    target_include_directories(${target} BEFORE PRIVATE ${HEYGEM_SYSTEM_FMT_SHIM})
  endif()
  # A PyTorch wheel's libtorch.so exports its own copies of the std::filesystem functions, and the
  # first library in NEEDED wins the symbol lookup: its remove_all crashes on a non-empty folder.
  # The shared C++ runtime comes first in every binary, so its own definitions are the ones bound.
  # By file name: a toolchain whose library folder holds only libstdc++.a (the GPU machine's gcc)
  # would otherwise link it statically, after libtorch.so has already defined those symbols.
  get_target_property(target_type ${target} TYPE)
  if(target_type STREQUAL "EXECUTABLE")
    target_link_options(${target} BEFORE PRIVATE "LINKER:--push-state,--no-as-needed" "-l:libstdc++.so.6"
                        "LINKER:--pop-state")
  endif()
  if(HEYGEM_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC -fsanitize=address,undefined)
  endif()
endfunction()
