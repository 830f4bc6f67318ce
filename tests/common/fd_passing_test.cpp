// Descriptors beside frames: they arrive usable and close-on-exec, and a frame carrying more than
// allowed closes every one of them.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "common/fd_passing.hpp"
#include "common/unique_fd.hpp"

namespace heygem {
namespace {

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

struct Pipe {
  UniqueFd read, write;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    read.reset(fds[0]);
    write.reset(fds[1]);
  }
};

std::size_t open_fd_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

TEST(FdPassing, DescriptorsArriveInOrderAndUsable) {
  SocketPair pair;
  std::vector<Pipe> pipes(3);
  std::vector<int> write_ends;
  for (auto& pipe : pipes) write_ends.push_back(pipe.write.get());
  send_frame_with_fds(pair.a.get(), R"({"type":"ping"})", write_ends);

  auto frame = recv_frame_with_fds(pair.b.get());
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(frame->payload, R"({"type":"ping"})");
  ASSERT_EQ(frame->fds.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const int fd = frame->fds[i].get();
    EXPECT_NE(fd, write_ends[i]);                         // a new descriptor ...
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);       // ... close-on-exec
    const std::string marker = "item" + std::to_string(i);
    ASSERT_EQ(::write(fd, marker.data(), marker.size()), static_cast<ssize_t>(marker.size()));
    std::string back(marker.size(), '\0');
    ASSERT_EQ(::read(pipes[i].read.get(), back.data(), back.size()), static_cast<ssize_t>(back.size()));
    EXPECT_EQ(back, marker);  // ... for the same pipe, in the same order
  }
}

TEST(FdPassing, MoreDescriptorsThanAllowedAreAllClosed) {
  SocketPair pair;
  std::vector<Pipe> pipes(4);
  std::vector<int> read_ends;
  for (auto& pipe : pipes) read_ends.push_back(pipe.read.get());
  const std::size_t before = open_fd_count();
  send_frame_with_fds(pair.a.get(), R"({"type":"ping"})", read_ends);
  try {
    recv_frame_with_fds(pair.b.get(), 2);
    FAIL() << "a frame with too many descriptors was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::protocol);
    EXPECT_NE(std::string(error.what()).find("4 file descriptors, at most 2"), std::string::npos) << error.what();
  }
  EXPECT_EQ(open_fd_count(), before);  // none of the four received copies leaked
}

TEST(FdPassing, DescriptorsBeyondTheControlBufferAreNotLeaked) {
  SocketPair pair;
  std::vector<Pipe> pipes(protocol::kMaxFdsPerFrame / 2 + 2);  // 2 fds each: more than any frame may carry
  std::vector<int> fds;
  for (auto& pipe : pipes) {
    fds.push_back(pipe.read.get());
    fds.push_back(pipe.write.get());
  }
  ASSERT_GT(fds.size(), protocol::kMaxFdsPerFrame);
  EXPECT_THROW(send_frame_with_fds(pair.a.get(), R"({"type":"ping"})", fds), Error);  // the sender refuses

  // A hostile sender that skips the check: raw sendmsg with all of them.
  const std::string frame = protocol::encode_frame(R"({"type":"ping"})");
  iovec chunk{const_cast<char*>(frame.data()), frame.size()};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msghdr message{};
  message.msg_iov = &chunk;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  const std::size_t before = open_fd_count();
  ASSERT_EQ(::sendmsg(pair.a.get(), &message, 0), static_cast<ssize_t>(frame.size()));
  EXPECT_THROW(recv_frame_with_fds(pair.b.get()), Error);
  EXPECT_EQ(open_fd_count(), before);
}

TEST(FdPassing, FramesAfterADescriptorFrameStaySeparate) {
  SocketPair pair;
  Pipe pipe;
  const int fd = pipe.write.get();
  send_frame_with_fds(pair.a.get(), R"({"type":"ping"})");
  send_frame_with_fds(pair.a.get(), R"({"type":"version"})", std::span<const int>(&fd, 1));
  send_frame_with_fds(pair.a.get(), R"({"type":"models"})");
  auto first = recv_frame_with_fds(pair.b.get());
  auto second = recv_frame_with_fds(pair.b.get());
  auto third = recv_frame_with_fds(pair.b.get());
  ASSERT_TRUE(first && second && third);
  EXPECT_TRUE(first->fds.empty());
  EXPECT_EQ(second->fds.size(), 1u);
  EXPECT_EQ(second->payload, R"({"type":"version"})");
  EXPECT_TRUE(third->fds.empty());
}

}  // namespace
}  // namespace heygem
