// Job ids and socket path resolution.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "common/job_id.hpp"
#include "common/peer_credentials.hpp"
#include "common/socket_path.hpp"
#include "common/unique_fd.hpp"

namespace heygem {
namespace {

TEST(JobId, ShortHexAndUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 2000; ++i) {
    const std::string id = new_job_id();
    EXPECT_TRUE(is_valid_job_id(id)) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 2000u);
}

TEST(JobId, RejectsAnythingElse) {
  EXPECT_TRUE(is_valid_job_id("0123456789ab"));
  for (const char* bad : {"", "0123456789a", "0123456789abc", "0123456789AB", "../../etc/pa", "0123456789a/"})
    EXPECT_FALSE(is_valid_job_id(bad)) << bad;
}

TEST(SocketPath, FlagBeatsEnvironmentBeatsDefault) {
  SocketEnvironment env{"/tmp/env.sock", "/run/user/1000", 1000};
  EXPECT_EQ(resolve_socket_path("/tmp/flag.sock", env), "/tmp/flag.sock");
  EXPECT_EQ(resolve_socket_path("", env), "/tmp/env.sock");
  env.heygem_socket.clear();
  EXPECT_EQ(resolve_socket_path("", env), "/run/user/1000/heygem/heygemd.sock");
}

TEST(SocketPath, RootAndUsersWithoutRuntimeDirUseTheSystemSocket) {
  EXPECT_EQ(default_socket_path({"", "/run/user/0", 0}), kSystemSocketPath);
  EXPECT_EQ(default_socket_path({"", "", 1000}), kSystemSocketPath);
  EXPECT_EQ(default_socket_path({"", "relative/dir", 1000}), kSystemSocketPath);
}

TEST(SocketPath, ClientFallsBackToTheSystemSocketOnlyWhenNothingWasNamed) {
  const SocketEnvironment user{"", "/run/user/1000", 1000};
  const auto candidates = client_socket_candidates("", user);
  ASSERT_EQ(candidates.size(), 2u);
  EXPECT_EQ(candidates[0], "/run/user/1000/heygem/heygemd.sock");
  EXPECT_EQ(candidates[1], kSystemSocketPath);
  EXPECT_EQ(client_socket_candidates("/tmp/x.sock", user).size(), 1u);
  EXPECT_EQ(client_socket_candidates("", {"/tmp/env.sock", "", 1000}).size(), 1u);
  EXPECT_EQ(client_socket_candidates("", {"", "", 0}).size(), 1u);
}

TEST(PeerCredentials, ReportsThisProcess) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd a(fds[0]), b(fds[1]);
  const PeerCredentials peer = peer_credentials(a.get());
  EXPECT_EQ(peer.pid, ::getpid());
  EXPECT_EQ(peer.uid, ::getuid());
  EXPECT_EQ(peer.gid, ::getgid());
}

}  // namespace
}  // namespace heygem
