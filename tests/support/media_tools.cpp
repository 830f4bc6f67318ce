#include "tests/support/media_tools.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace heygem::test {
namespace {

std::string capture(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe.get())) out.append(buffer, n);
  return out;
}

double parse_rate(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos) return std::atof(text.c_str());
  const double den = std::atof(text.c_str() + slash + 1);
  return den != 0 ? std::atof(text.substr(0, slash).c_str()) / den : 0;
}

// key=value lines of `ffprobe -of default=noprint_wrappers=1`
ProbedStream parse(const std::string& text) {
  ProbedStream s;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    s.present = true;
    if (key == "codec_name") s.codec = value;
    else if (key == "width") s.width = std::atoi(value.c_str());
    else if (key == "height") s.height = std::atoi(value.c_str());
    else if (key == "r_frame_rate") s.fps = parse_rate(value);
    else if (key == "duration" && value != "N/A") s.duration = std::atof(value.c_str());
    else if (key == "nb_read_frames" && value != "N/A") s.frames = std::atoll(value.c_str());
  }
  return s;
}

}  // namespace

void ffmpeg(const std::string& args) {
  const std::string command = "ffmpeg -hide_banner -loglevel error -nostdin -y " + args;
  if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

ProbedStream probe_video(const std::filesystem::path& file) {
  return parse(capture("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                       "stream=codec_name,width,height,r_frame_rate,duration,nb_read_frames "
                       "-of default=noprint_wrappers=1 '" + file.string() + "'"));
}

ProbedStream probe_audio(const std::filesystem::path& file) {
  return parse(capture("ffprobe -v error -select_streams a:0 -show_entries stream=codec_name,duration "
                       "-of default=noprint_wrappers=1 '" + file.string() + "'"));
}

}  // namespace heygem::test
