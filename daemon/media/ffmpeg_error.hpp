#pragma once
// FFmpeg return codes turned into heygem::Error messages that name the file and the cause.
#include <filesystem>
#include <string>

#include "common/errors.hpp"

namespace heygem::media::ffmpeg {

// av_strerror's text for an AVERROR code.
std::string error_text(int averror);

// "<file>: <what> (<FFmpeg's reason>)"
[[noreturn]] void fail(ErrorCode code, const std::filesystem::path& file, const std::string& what, int averror);
[[noreturn]] void fail(ErrorCode code, const std::filesystem::path& file, const std::string& what);

// Throws through fail() when averror < 0; returns it otherwise.
inline int check(int averror, ErrorCode code, const std::filesystem::path& file, const std::string& what) {
  if (averror < 0) fail(code, file, what, averror);
  return averror;
}

}  // namespace heygem::media::ffmpeg
