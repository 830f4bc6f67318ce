#pragma once
// Job ids: 12 lowercase hex digits (48 random bits) from the system's random source. Short enough to
// type, unique enough for any spool; anything else is not a job id and never reaches a file name.
#include <string>
#include <string_view>

namespace heygem {

inline constexpr std::size_t kJobIdLength = 12;

std::string new_job_id();
bool is_valid_job_id(std::string_view id);

}  // namespace heygem
