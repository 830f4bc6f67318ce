#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "common/errors.hpp"
#include "common/fd_passing.hpp"
#include "common/protocol.hpp"
#include "common/unique_fd.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace heygem::fuzz {
namespace {

namespace protocol = heygem::protocol;

// encode(parse(x)) must parse again and encode to the same text: what one end accepts, the other
// end's encoder can say, and nothing is lost or invented on the way.
template <typename Message, typename Parse>
void check_round_trip(const Message& message, Parse parse, std::string_view direction) {
  const std::string encoded = protocol::encode(message);
  try {
    const std::string again = protocol::encode(parse(encoded));
    if (again != encoded)
      throw PropertyViolation(std::string(direction) + " changes on a second round trip: " + encoded + " -> " + again);
  } catch (const Error& error) {
    throw PropertyViolation(std::string(direction) + " accepted, but its own encoding is rejected (" +
                            error.what() + "): " + encoded);
  }
}

void parse_payload(std::string_view payload) {
  try {
    const protocol::Request request = protocol::parse_request(payload);
    check_round_trip(request, [](std::string_view text) { return protocol::parse_request(text); }, "request");
    if (protocol::expected_fds(request) > protocol::kMaxFdsPerFrame)
      throw PropertyViolation("a request that needs more fds than a frame may carry was accepted");
  } catch (const Error&) {
  }
  try {
    const protocol::Response response = protocol::parse_response(payload);
    check_round_trip(response, [](std::string_view text) { return protocol::parse_response(text); }, "response");
  } catch (const Error&) {
  }
}

// The header parser alone, over the bytes as they come: each announced payload (or what is left).
void split_frames(Bytes input) {
  std::size_t offset = 0;
  while (input.size() - offset >= protocol::kFrameHeaderBytes) {
    unsigned char header[protocol::kFrameHeaderBytes];
    std::memcpy(header, input.data() + offset, sizeof header);
    offset += sizeof header;
    std::size_t length = 0;
    try {
      length = protocol::decode_frame_length(header);
    } catch (const Error&) {
      return;  // a reader closes the connection here
    }
    if (length == 0 || length > protocol::kMaxFrameBytes)
      throw PropertyViolation("decode_frame_length returned " + std::to_string(length));
    const std::size_t available = std::min(length, input.size() - offset);
    parse_payload(std::string_view(reinterpret_cast<const char*>(input.data()) + offset, available));
    offset += available;
  }
}

// The daemon's stream reader: the bytes arrive on a Unix socket, the writer then hangs up.
// Non-blocking, so an input larger than the socket buffer is skipped instead of blocking.
void receive_frames(Bytes input) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) return;  // fd exhaustion is not the input's fault
  const UniqueFd reader(pair[0]);
  {
    const UniqueFd writer(pair[1]);
    std::size_t written = 0;
    while (written < input.size()) {
      const ssize_t n = ::send(writer.get(), input.data() + written, input.size() - written, MSG_NOSIGNAL);
      if (n <= 0) return;  // the socket buffer is smaller than this input: the header path covered it
      written += static_cast<std::size_t>(n);
    }
  }
  FrameReceiver receiver;
  // Every read consumes bytes or reaches the end, so the input's size bounds the loop.
  for (std::size_t reads = 0; reads <= input.size() + 1; ++reads) {
    try {
      const auto frame = receiver.read(reader.get());
      if (frame) {
        if (!frame->fds.empty()) throw PropertyViolation("fds received that nobody sent");
        parse_payload(frame->payload);
      } else if (receiver.eof()) {
        return;
      }
    } catch (const Error&) {
      return;  // out of sync: the connection would be closed
    }
  }
  throw PropertyViolation("FrameReceiver makes no progress on a finished stream");
}

}  // namespace

void protocol_input(Bytes input) {
  split_frames(input);
  receive_frames(input);
}

}  // namespace heygem::fuzz
