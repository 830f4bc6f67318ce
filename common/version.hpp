#pragma once
// The project's version (CMake's PROJECT_VERSION), shown by heygemd and heygemctl.
#include <string_view>

namespace heygem {

std::string_view heygem_version();

}  // namespace heygem
