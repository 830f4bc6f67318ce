// Frame headers: round trip, and an oversized length is refused from the header alone, before any
// buffer for the payload is allocated.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include "common/errors.hpp"
#include "common/fd_passing.hpp"
#include "common/protocol.hpp"
#include "common/unique_fd.hpp"

// Records the largest allocation this test binary makes, to prove the receiver never allocates for
// an oversized frame. (A test instrument: replacing global new is the only way to observe it.)
// GCC cannot see that these replacements pair malloc with free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<std::size_t> largest_allocation{0};
}

void* operator new(std::size_t size) {
  std::size_t seen = largest_allocation.load();
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

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

void write_all(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
}

std::string header(std::uint32_t size) {
  return {static_cast<char>(size >> 24), static_cast<char>((size >> 16) & 0xff), static_cast<char>((size >> 8) & 0xff),
          static_cast<char>(size & 0xff)};
}

TEST(Framing, HeaderIsBigEndianLength) {
  const std::string payload = R"({"type":"ping"})";
  const std::string frame = protocol::encode_frame(payload);
  ASSERT_EQ(frame.size(), payload.size() + protocol::kFrameHeaderBytes);
  EXPECT_EQ(frame.substr(0, 4), header(static_cast<std::uint32_t>(payload.size())));
  unsigned char raw[4];
  std::copy(frame.begin(), frame.begin() + 4, raw);
  EXPECT_EQ(protocol::decode_frame_length(raw), payload.size());
  EXPECT_EQ(frame.substr(4), payload);
}

TEST(Framing, RoundTripOverASocket) {
  SocketPair pair;
  const std::string payload = protocol::encode(protocol::Request{protocol::ListRequest{true}});
  send_frame_with_fds(pair.a.get(), payload);
  send_frame_with_fds(pair.a.get(), payload);
  for (int i = 0; i < 2; ++i) {
    auto frame = recv_frame_with_fds(pair.b.get());
    ASSERT_TRUE(frame.has_value());
    EXPECT_EQ(frame->payload, payload);
    EXPECT_TRUE(frame->fds.empty());
  }
  pair.a.reset();
  EXPECT_FALSE(recv_frame_with_fds(pair.b.get()).has_value());  // clean end of stream
}

TEST(Framing, LargestFrameFitsAndOneMoreByteDoesNot) {
  const std::string largest(protocol::kMaxFrameBytes, 'x');
  EXPECT_NO_THROW(protocol::encode_frame(largest));
  EXPECT_THROW(protocol::encode_frame(largest + "x"), Error);
  EXPECT_THROW(protocol::encode_frame(""), Error);
}

TEST(Framing, OversizedLengthIsRejectedBeforeAllocating) {
  SocketPair pair;
  write_all(pair.a.get(), header(0xfffffff0u));  // announces ~4 GiB, sends nothing more
  largest_allocation = 0;
  FrameReceiver receiver;
  try {
    while (!receiver.read(pair.b.get())) {
    }
    FAIL() << "an oversized frame was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::protocol);
    EXPECT_NE(std::string(error.what()).find("exceeds the limit"), std::string::npos) << error.what();
  }
  EXPECT_LT(largest_allocation.load(), protocol::kMaxFrameBytes);
}

TEST(Framing, EmptyFrameIsRejected) {
  SocketPair pair;
  write_all(pair.a.get(), header(0));
  EXPECT_THROW(recv_frame_with_fds(pair.b.get()), Error);
}

TEST(Framing, StreamEndingInsideAFrameIsAnError) {
  SocketPair pair;
  write_all(pair.a.get(), header(100) + "{\"type\"");
  pair.a.reset();
  try {
    recv_frame_with_fds(pair.b.get());
    FAIL() << "a truncated frame was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::protocol);
  }
}

TEST(Framing, NonBlockingReceiverAssemblesPartialWrites) {
  SocketPair pair;
  ASSERT_EQ(::fcntl(pair.b.get(), F_SETFL, O_NONBLOCK), 0);
  const std::string frame = protocol::encode_frame(R"({"type":"ping"})");
  FrameReceiver receiver;
  EXPECT_FALSE(receiver.read(pair.b.get()).has_value());  // nothing there yet: EAGAIN
  EXPECT_FALSE(receiver.eof());
  std::optional<ReceivedFrame> result;
  for (std::size_t at = 0; at < frame.size(); at += 3) {
    write_all(pair.a.get(), frame.substr(at, 3));
    while (auto got = receiver.read(pair.b.get())) result = std::move(got);
  }
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->payload, R"({"type":"ping"})");
  EXPECT_FALSE(receiver.in_frame());
}

}  // namespace
}  // namespace heygem
