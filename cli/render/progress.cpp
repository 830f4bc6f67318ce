#include "cli/render/progress.hpp"

#include <map>
#include <ostream>
#include <utility>

#include "cli/render/format.hpp"

namespace heygem::cli::render {
namespace {

using namespace heygem::protocol;

// What the human views know about a job, built from the snapshot and the events.
struct JobModel {
  struct Item {
    std::string name;
    std::string status;  // "pending", the stage while running, "done", "failed", ...
    std::int64_t frames_done = 0, frames_total = 0;
    double fps = 0, eta_s = 0;
  };
  std::string job_id;
  std::string header;  // "queued (position 2)", "loading model wav2lip", "running"
  std::vector<Item> items;
  std::vector<std::string> output_labels;

  Item& item(int index) {
    if (index >= static_cast<int>(items.size())) items.resize(static_cast<std::size_t>(index) + 1);
    Item& entry = items[static_cast<std::size_t>(index)];
    if (entry.name.empty()) entry.name = "item " + std::to_string(index + 1);
    return entry;
  }

  std::string item_label(int index) {
    return "item " + std::to_string(index + 1) + "/" + std::to_string(items.size()) + " " + item(index).name;
  }

  std::string output_of(const ItemDoneEvent& done) const {
    if (done.output == OutputPlace::spool) return "in the spool (heygemctl fetch " + job_id + ")";
    const auto index = static_cast<std::size_t>(done.item);
    return index < output_labels.size() ? output_labels[index] : "the output file";
  }

  void learn(const JobStatus& job) {
    job_id = job.job_id;
    items.clear();
    for (const auto& source : job.items) {
      Item entry;
      entry.name = printable(source.name);
      entry.status = source.state == ItemState::running && !source.stage.empty() ? source.stage
                                                                                  : std::string(to_string(source.state));
      entry.frames_done = source.frames_done;
      entry.frames_total = source.frames_total;
      entry.fps = source.fps;
      entry.eta_s = source.eta_s;
      items.push_back(entry);
    }
    header = job.state == JobState::queued ? "queued (position " + std::to_string(job.position) + ")"
                                           : std::string(to_string(job.state));
  }

  std::string item_done_line(const ItemDoneEvent& done) {
    std::string line = item_label(done.item) + ": done, " + std::to_string(done.frames) + " frames in " +
                       format_fixed(done.wall_s, 1) + " s (" + format_fixed(done.fps, 1) + " fps)";
    if (done.frames_without_face > 0) line += ", " + std::to_string(done.frames_without_face) + " without a face";
    if (done.frames_gated > 0) line += ", " + std::to_string(done.frames_gated) + " silent (source kept)";
    if (done.avatar_cache == "hit") line += ", faces from the avatar cache";
    if (done.avatar_cache == "partial") line += ", faces partly from the avatar cache";
    return line + " -> " + output_of(done);
  }
};

std::string summary(const DoneEvent& done) {
  std::string line = "done: " + std::to_string(done.outputs.size()) + (done.outputs.size() == 1 ? " output, " : " outputs, ") +
                     std::to_string(done.frames) + " frames in " + format_fixed(done.wall_s, 1) + " s (" +
                     format_fixed(done.fps, 1) + " fps)";
  if (done.frames_without_face > 0) line += ", " + std::to_string(done.frames_without_face) + " frames without a face";
  return line;
}

class QuietView final : public ProgressView {
 public:
  void submitted(const SubmittedResponse&) override {}
  void snapshot(const JobStatus&) override {}
  void event(const JobEvent&) override {}
};

class JsonView final : public ProgressView {
 public:
  explicit JsonView(std::ostream& out) : out_(out) {}
  void submitted(const SubmittedResponse& m) override { write(Response{m}); }
  void snapshot(const JobStatus& m) override { write(Response{m}); }
  void event(const JobEvent& m) override { write(Response{m}); }

 private:
  void write(const Response& message) { out_ << encode(message) << '\n' << std::flush; }
  std::ostream& out_;
};

// Off a terminal: one line when something changes that a log reader cares about.
class LinesView final : public ProgressView {
 public:
  LinesView(std::ostream& out, std::vector<std::string> labels, std::chrono::milliseconds interval)
      : out_(out), interval_(interval) {
    model_.output_labels = std::move(labels);
  }

  void submitted(const SubmittedResponse& m) override {
    model_.job_id = m.job_id;
    line("submitted (" + std::to_string(m.items) + (m.items == 1 ? " item)" : " items)"));
  }
  void snapshot(const JobStatus& job) override {
    model_.learn(job);
    if (!is_finished(job.state)) line(model_.header);
  }
  void event(const JobEvent& e) override {
    model_.job_id = e.job_id;
    std::visit([this](const auto& body) { on(body); }, e.body);
  }

 private:
  void on(const QueuedEvent& e) {
    const std::string header = "queued (position " + std::to_string(e.position) + ")";
    if (header != model_.header) line(header);
    model_.header = header;
  }
  void on(const LoadingModelEvent& e) { line(model_.header = "loading model " + e.model); }
  void on(const RunningEvent& e) {
    if (static_cast<int>(model_.items.size()) < e.items) model_.items.resize(static_cast<std::size_t>(e.items));
    auto& item = model_.item(e.item);
    const auto now = std::chrono::steady_clock::now();
    // Per item: the items of a job spread over devices run at once and their events interleave.
    auto& last = last_shown_[e.item];
    if (e.stage == last.stage) {
      // Within a stage: a plain progress line now and then, so a log or a pipe sees fps and ETA.
      if (e.frames_total <= 0 || e.frames_done <= 0 || now - last.at < interval_) return;
      std::string text = model_.item_label(e.item) + ": " + e.stage + " " + std::to_string(e.frames_done) + "/" +
                         std::to_string(e.frames_total) + " frames";
      if (e.fps > 0) text += ", " + format_fixed(e.fps, 1) + " fps, ETA " + format_duration(e.eta_s);
      line(text);
      last.at = now;
      return;
    }
    last.stage = e.stage;
    last.at = now;
    item.status = e.stage;
    std::string text = model_.item_label(e.item) + ": " + e.stage;
    if (e.frames_total > 0) text += " (" + std::to_string(e.frames_total) + " frames)";
    line(text);
  }
  void on(const ItemDoneEvent& e) { line(model_.item_done_line(e)); }
  void on(const DoneEvent& e) { line(summary(e)); }
  void on(const FailedEvent& e) { line("failed: " + printable(e.cause)); }
  void on(const CancelledEvent&) { line("cancelled"); }

  void line(const std::string& text) { out_ << "job " << model_.job_id << " " << text << '\n' << std::flush; }

  std::ostream& out_;
  std::chrono::milliseconds interval_;
  JobModel model_;
  struct Shown {
    std::string stage;
    std::chrono::steady_clock::time_point at{};
  };
  std::map<int, Shown> last_shown_;  // per item: its stage line and the last progress line
};

// On a terminal: a header and one bar per item, redrawn in place; finished items and the end
// result are printed as permanent lines above.
class TtyView final : public ProgressView {
 public:
  TtyView(std::ostream& out, std::vector<std::string> labels) : out_(out) { model_.output_labels = std::move(labels); }

  void submitted(const SubmittedResponse& m) override {
    model_.job_id = m.job_id;
    permanent("submitted job " + m.job_id + " (" + std::to_string(m.items) + (m.items == 1 ? " item)" : " items)"));
  }
  void snapshot(const JobStatus& job) override {
    model_.learn(job);
    if (!is_finished(job.state)) redraw();
  }
  void event(const JobEvent& e) override {
    model_.job_id = e.job_id;
    std::visit([this](const auto& body) { on(body); }, e.body);
  }

 private:
  void on(const QueuedEvent& e) {
    model_.header = "queued (position " + std::to_string(e.position) + ")";
    redraw();
  }
  void on(const LoadingModelEvent& e) {
    model_.header = "loading model " + e.model;
    redraw();
  }
  void on(const RunningEvent& e) {
    if (static_cast<int>(model_.items.size()) < e.items) model_.items.resize(static_cast<std::size_t>(e.items));
    auto& item = model_.item(e.item);
    item.status = e.stage;
    item.frames_done = e.frames_done;
    item.frames_total = e.frames_total;
    item.fps = e.fps;
    item.eta_s = e.eta_s;
    model_.header = "running";
    redraw();
  }
  void on(const ItemDoneEvent& e) {
    auto& item = model_.item(e.item);
    item.status = "done";
    item.frames_done = item.frames_total = e.frames;
    item.fps = e.fps;
    item.eta_s = 0;
    permanent(model_.item_done_line(e));
  }
  void on(const DoneEvent& e) { finish(summary(e)); }
  void on(const FailedEvent& e) { finish("failed: " + printable(e.cause)); }
  void on(const CancelledEvent&) { finish("cancelled"); }

  std::string bar_line(const JobModel::Item& item, int index) const {
    std::string line = "  " + std::to_string(index + 1) + "/" + std::to_string(model_.items.size()) + " " + item.name +
                       "  " + item.status;
    if (item.frames_total > 0) {
      line += "  " + progress_bar(item.frames_done, item.frames_total, 32) + " " + percent(item.frames_done, item.frames_total);
      line += "  " + std::to_string(item.frames_done) + "/" + std::to_string(item.frames_total);
      if (item.fps > 0) line += "  " + format_fixed(item.fps, 1) + " fps";
      if (item.status != "done") line += "  ETA " + format_duration(item.eta_s);
    }
    return line;
  }

  void erase_live() {
    for (int i = 0; i < live_lines_; ++i) out_ << "\x1b[1A\r\x1b[2K";
    live_lines_ = 0;
  }

  void redraw() {
    erase_live();
    out_ << "job " << model_.job_id << "  " << model_.header << '\n';
    ++live_lines_;
    for (std::size_t i = 0; i < model_.items.size(); ++i) {
      out_ << bar_line(model_.items[i], static_cast<int>(i)) << '\n';
      ++live_lines_;
    }
    out_ << std::flush;
  }

  // A line that stays: printed above the live block, which is then drawn again below it.
  void permanent(const std::string& text) {
    erase_live();
    out_ << text << '\n';
    redraw();
  }

  void finish(const std::string& text) {
    erase_live();
    out_ << "job " << model_.job_id << " " << text << '\n' << std::flush;
  }

  std::ostream& out_;
  JobModel model_;
  int live_lines_ = 0;
};

}  // namespace

Mode choose_mode(bool json, bool quiet, bool stdout_is_tty) {
  if (json) return Mode::json;
  if (quiet) return Mode::quiet;
  return stdout_is_tty ? Mode::tty : Mode::lines;
}

std::unique_ptr<ProgressView> make_progress_view(Mode mode, std::ostream& out, std::vector<std::string> output_labels,
                                                 std::chrono::milliseconds lines_interval) {
  switch (mode) {
    case Mode::tty: return std::make_unique<TtyView>(out, std::move(output_labels));
    case Mode::lines: return std::make_unique<LinesView>(out, std::move(output_labels), lines_interval);
    case Mode::json: return std::make_unique<JsonView>(out);
    case Mode::quiet: return std::make_unique<QuietView>();
  }
  return std::make_unique<QuietView>();
}

std::string describe_terminal(const protocol::JobEvent& event) {
  if (const auto* done = std::get_if<protocol::DoneEvent>(&event.body)) return "job " + event.job_id + " " + summary(*done);
  if (const auto* failed = std::get_if<protocol::FailedEvent>(&event.body))
    return "job " + event.job_id + " failed: " + printable(failed->cause);
  if (std::holds_alternative<protocol::CancelledEvent>(event.body)) return "job " + event.job_id + " cancelled";
  return "job " + event.job_id + " " + std::string(protocol::event_name(event.body));
}

}  // namespace heygem::cli::render
