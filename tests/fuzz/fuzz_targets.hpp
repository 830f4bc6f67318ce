#pragma once
// The fuzzed entry points, shared by the libFuzzer binaries (clang) and the regression runner that
// every build runs (tests/fuzz/regression_test.cpp).
//
// Contract of each target: feed the bytes to the real parser. A clean rejection is a heygem::Error
// and is caught here; anything else that escapes (another exception type, a broken round trip
// reported as PropertyViolation) is a bug, and so is any sanitizer report.
#include <cstdint>
#include <span>
#include <stdexcept>

namespace heygem::fuzz {

using Bytes = std::span<const std::uint8_t>;

// A parsed value that breaks an invariant the parser promises (e.g. encode(parse(x)) not parsing).
class PropertyViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// The input as a byte stream of frames: framing (decode_frame_length and the socket FrameReceiver),
// then every payload as a request and as a response; accepted messages must round-trip.
void protocol_input(Bytes input);

// The input as a heygemd.yaml text, through parse_config over the embedded defaults.
void config_input(Bytes input);

// The input as a checkpoint file (legacy pickle, zip or safetensors), through
// read_checkpoint_bytes and state_dict_from; every tensor read is touched.
void checkpoint_input(Bytes input);

}  // namespace heygem::fuzz
