// bench_checkpoint MODE FILE: one timed run in a fresh process, so that every mode pays for fresh
// memory the same way (page faults dominate a 145 MB load; a warm allocator would hide them).
//   MODE read: the file's bytes into one freshly allocated buffer (the floor any reader pays)
//   MODE load: heygem::models::load_state_dict(FILE)
// Prints "wall_s=... cpu_s=... entries=... sum=..." (sum: float64 sum of every value, to compare
// with torch.load's).
#include <fcntl.h>
#include <unistd.h>

#include <ATen/ops/empty.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>

#include "common/errors.hpp"
#include "daemon/models/checkpoint.hpp"

namespace {

double cpu_now() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// Same allocator as the tensors (c10's, which asks for transparent huge pages), 1 MiB preads.
at::Tensor read_whole_file(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + file.string());
  const auto size = static_cast<std::size_t>(std::filesystem::file_size(file));
  at::Tensor buffer = at::empty({static_cast<std::int64_t>(size)}, at::kByte);
  auto* bytes = static_cast<char*>(buffer.data_ptr());
  std::size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, bytes + done, std::min<std::size_t>(size - done, 1u << 20), static_cast<off_t>(done));
    if (got <= 0) break;
    done += static_cast<std::size_t>(got);
  }
  ::close(fd);
  return buffer;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 3 ? argv[1] : "";
  if (mode != "read" && mode != "load") {
    std::fprintf(stderr, "usage: bench_checkpoint read|load FILE\n");
    return 2;
  }
  const std::filesystem::path file = argv[2];
  try {
    const auto wall_start = std::chrono::steady_clock::now();
    const double cpu_start = cpu_now();
    heygem::models::StateDict state;
    if (mode == "read") {
      state.emplace_back("bytes", read_whole_file(file));
    } else {
      state = heygem::models::load_state_dict(file);
    }
    const double cpu = cpu_now() - cpu_start;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    double sum = 0;
    if (mode == "load")
      for (const auto& [name, tensor] : state) sum += tensor.sum(at::kDouble).item<double>();
    std::printf("wall_s=%.4f cpu_s=%.4f entries=%zu sum=%.6f\n", wall, cpu, state.size(), sum);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "bench_checkpoint: %s\n", error.what());
    return 1;
  }
  return 0;
}
