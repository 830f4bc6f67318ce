#include "daemon/jobs/store.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>

#include <fstream>

#include "common/errors.hpp"
#include "common/unique_fd.hpp"
#include "daemon/jobs/spool.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::jobs {
namespace {

Job sample_job(std::uint64_t sequence, JobState state) {
  Job job;
  job.id = new_job_id();
  job.sequence = sequence;
  job.owner = 1000 + static_cast<uid_t>(sequence);
  job.state = state;
  job.audio_name = "a.wav";
  job.options = {{"crf", 30}};
  ItemResult item;
  item.video_name = "v" + std::to_string(sequence) + ".mp4";
  job.items.push_back(item);
  job.submitted_at_ms = now_unix_ms();
  return job;
}

TEST(JobStore, RoundTripsRecordsInSequenceOrder) {
  test::TempDir dir;
  JobStore store(dir.path());
  std::vector<Job> jobs{sample_job(3, JobState::queued), sample_job(1, JobState::done), sample_job(2, JobState::running)};
  jobs[1].items[0].state = ItemState::done;
  jobs[1].items[0].frames = 75;
  jobs[1].items[0].device = "cuda:1";
  for (const auto& job : jobs) store.save(job);
  const auto loaded = store.load_all();
  ASSERT_EQ(loaded.jobs.size(), 3u);
  EXPECT_TRUE(loaded.quarantined.empty());
  EXPECT_EQ(loaded.jobs[0].id, jobs[1].id);
  EXPECT_EQ(loaded.jobs[0].items[0].frames, 75);
  EXPECT_EQ(loaded.jobs[0].items[0].device, "cuda:1");
  EXPECT_EQ(loaded.jobs[1].state, JobState::running);
  EXPECT_EQ(loaded.jobs[2].owner, jobs[0].owner);
  EXPECT_EQ(loaded.jobs[2].options, jobs[0].options);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "jobs" / (jobs[0].id + ".json.tmp")));
}

TEST(JobStore, SaveReplacesAndRemoveDeletes) {
  test::TempDir dir;
  JobStore store(dir.path());
  auto job = sample_job(1, JobState::queued);
  store.save(job);
  job.state = JobState::failed;
  job.error = "no face";
  store.save(job);
  auto loaded = store.load_all();
  ASSERT_EQ(loaded.jobs.size(), 1u);
  EXPECT_EQ(loaded.jobs[0].state, JobState::failed);
  EXPECT_EQ(loaded.jobs[0].error, "no face");
  store.remove(job.id);
  EXPECT_TRUE(store.load_all().jobs.empty());
}

TEST(JobStore, CorruptRecordsAreQuarantinedNotDropped) {
  test::TempDir dir;
  JobStore store(dir.path());
  const auto good = sample_job(1, JobState::queued);
  store.save(good);
  const std::string garbage = "{\"format\": 1, \"id\": \"trunc";
  std::ofstream(dir.path() / "jobs" / "0123456789ab.json") << garbage;
  auto wrong_state = to_json(sample_job(2, JobState::queued));
  wrong_state["state"] = "exploded";
  std::ofstream(dir.path() / "jobs" / (wrong_state["id"].get<std::string>() + ".json")) << wrong_state.dump();
  std::ofstream(dir.path() / "jobs" / "0123456789ab.json.tmp") << "half written";

  const auto loaded = store.load_all();
  ASSERT_EQ(loaded.jobs.size(), 1u);
  EXPECT_EQ(loaded.jobs[0].id, good.id);
  ASSERT_EQ(loaded.quarantined.size(), 2u);
  for (const auto& q : loaded.quarantined) {
    EXPECT_TRUE(std::filesystem::exists(q.moved_to));
    EXPECT_EQ(q.moved_to.parent_path(), dir.path() / "quarantine");
  }
  // The garbage is kept byte for byte.
  bool found = false;
  for (const auto& q : loaded.quarantined) {
    std::ifstream in(q.moved_to);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (text == garbage) {
      found = true;
      EXPECT_NE(q.cause.find("not valid JSON"), std::string::npos) << q.cause;
    } else {
      EXPECT_NE(q.cause.find("exploded"), std::string::npos) << q.cause;
    }
  }
  EXPECT_TRUE(found);
  // A second corrupt record with the same name does not overwrite the first quarantined copy.
  std::ofstream(dir.path() / "jobs" / "0123456789ab.json") << "again";
  const auto second = store.load_all();
  ASSERT_EQ(second.quarantined.size(), 1u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() / "quarantine"),
                          std::filesystem::directory_iterator()),
            3);
}

TEST(JobRecord, RejectsBadIds) {
  auto record = to_json(sample_job(1, JobState::queued));
  record["id"] = "../../etc/passwd";
  EXPECT_THROW(job_from_json(record), Error);
  EXPECT_TRUE(is_valid_job_id(new_job_id()));
  EXPECT_FALSE(is_valid_job_id("0123456789AB"));
}

TEST(Spool, CopiesInputsAndEnforcesTheLimit) {
  test::TempDir dir;
  Spool spool(dir.path());
  const auto id = new_job_id();
  spool.create_job_dir(id);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd read_end(fds[0]);
  {
    UniqueFd write_end(fds[1]);
    ASSERT_EQ(::write(write_end.get(), "0123456789", 10), 10);
  }
  EXPECT_EQ(spool.copy_in(read_end.get(), spool.audio_path(id), 100, "audio a.wav"), 10u);
  EXPECT_EQ(std::filesystem::file_size(spool.audio_path(id)), 10u);

  std::ofstream(dir.path() / "big") << std::string(1000, 'x');
  UniqueFd big(::open((dir.path() / "big").c_str(), O_RDONLY));
  try {
    spool.copy_in(big.get(), spool.video_path(id, 0), 999, "video big.mp4");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_input);
    EXPECT_NE(std::string(e.what()).find("video big.mp4"), std::string::npos);
  }
  std::ofstream(dir.path() / "empty");
  UniqueFd empty(::open((dir.path() / "empty").c_str(), O_RDONLY));
  EXPECT_THROW(spool.copy_in(empty.get(), spool.video_path(id, 1), 999, "video empty.mp4"), Error);
  spool.remove_job(id);
  EXPECT_FALSE(std::filesystem::exists(spool.job_dir(id)));
}

TEST(Spool, DeliverReplacesTheTargetContent) {
  test::TempDir dir;
  std::ofstream(dir.path() / "result") << "new result";
  std::ofstream(dir.path() / "target") << "an older and much longer content";
  UniqueFd target(::open((dir.path() / "target").c_str(), O_WRONLY));
  EXPECT_EQ(deliver_file(dir.path() / "result", target.get(), "target"), 10u);
  std::ifstream in(dir.path() / "target");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "new result");
}

}  // namespace
}  // namespace heygem::jobs
