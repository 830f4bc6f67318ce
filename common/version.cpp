#include "common/version.hpp"

#ifndef HEYGEM_VERSION
#error "HEYGEM_VERSION must be defined by the build (common/CMakeLists.txt)"
#endif

namespace heygem {

std::string_view heygem_version() { return HEYGEM_VERSION; }

}  // namespace heygem
