#pragma once
// How a job's progress is shown: live bars on a terminal, one line per stage change otherwise,
// NDJSON with --json, nothing with --quiet. Every view is fed the same message sequence.
#include <chrono>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "common/protocol.hpp"

namespace heygem::cli::render {

enum class Mode { tty, lines, json, quiet };

// --json wins over --quiet, which wins over the terminal check.
Mode choose_mode(bool json, bool quiet, bool stdout_is_tty);

class ProgressView {
 public:
  virtual ~ProgressView() = default;
  virtual void submitted(const protocol::SubmittedResponse& submitted) = 0;
  virtual void snapshot(const protocol::JobStatus& job) = 0;
  virtual void event(const protocol::JobEvent& event) = 0;
};

// `output_labels`: where each item's output lands on this machine (local paths), shown when an
// item is written into its fd; empty when unknown (watch from another shell). Off a terminal a
// plain progress line (frames, fps, ETA) comes at most every `lines_interval` while a stage runs.
std::unique_ptr<ProgressView> make_progress_view(Mode mode, std::ostream& out,
                                                 std::vector<std::string> output_labels = {},
                                                 std::chrono::milliseconds lines_interval = std::chrono::seconds(5));

// The one-line summary of a terminal event, also used by `wait`.
std::string describe_terminal(const protocol::JobEvent& event);

}  // namespace heygem::cli::render
