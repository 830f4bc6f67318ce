// One table of exit codes; every daemon error and every job ending maps onto it.
#include <gtest/gtest.h>

#include <set>

#include "cli/commands/commands.hpp"
#include "cli/lib/exit_codes.hpp"

namespace heygem::cli {
namespace {

TEST(ExitCodes, TableIsDenseAndUnique) {
  std::set<int> codes;
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < kExitCodes.size(); ++i) {
    EXPECT_EQ(to_int(kExitCodes[i].code), static_cast<int>(i));  // 0..N-1, in order
    codes.insert(to_int(kExitCodes[i].code));
    names.insert(kExitCodes[i].name);
    EXPECT_FALSE(kExitCodes[i].meaning.empty());
  }
  EXPECT_EQ(codes.size(), kExitCodes.size());
  EXPECT_EQ(names.size(), kExitCodes.size());
}

TEST(ExitCodes, IssueContractHolds) {
  EXPECT_EQ(to_int(ExitCode::ok), 0);
  EXPECT_EQ(to_int(ExitCode::job_failed), 1);
  EXPECT_EQ(to_int(ExitCode::usage), 2);
  EXPECT_EQ(to_int(ExitCode::unreachable), 3);
  EXPECT_EQ(to_int(ExitCode::cancelled), 4);
}

TEST(ExitCodes, DaemonErrorsMap) {
  EXPECT_EQ(exit_code_for(ErrorCode::invalid_argument), ExitCode::usage);
  EXPECT_EQ(exit_code_for(ErrorCode::invalid_input), ExitCode::job_failed);
  EXPECT_EQ(exit_code_for(ErrorCode::not_found), ExitCode::not_found);
  EXPECT_EQ(exit_code_for(ErrorCode::permission_denied), ExitCode::not_found);
  EXPECT_EQ(exit_code_for(ErrorCode::protocol), ExitCode::protocol);
  EXPECT_EQ(exit_code_for(ErrorCode::resource), ExitCode::resource);
  EXPECT_EQ(exit_code_for(ErrorCode::cancelled), ExitCode::cancelled);
  EXPECT_EQ(exit_code_for(ErrorCode::internal), ExitCode::internal);
}

TEST(ExitCodes, JobEndingsMap) {
  EXPECT_EQ(exit_code_for(protocol::EventBody{protocol::DoneEvent{}}), ExitCode::ok);
  EXPECT_EQ(exit_code_for(protocol::EventBody{protocol::FailedEvent{"x"}}), ExitCode::job_failed);
  EXPECT_EQ(exit_code_for(protocol::EventBody{protocol::CancelledEvent{}}), ExitCode::cancelled);
  EXPECT_THROW(exit_code_for(protocol::EventBody{protocol::RunningEvent{}}), Error);
}

}  // namespace
}  // namespace heygem::cli
