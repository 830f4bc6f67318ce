#include "daemon/pipeline/item_options.hpp"

namespace heygem::pipeline {

ItemOptions item_options_for(const protocol::SubmitOptions& options) {
  ItemOptions out;
  if (options.blend) out.blend = *options.blend == protocol::Blend::hard ? BlendMode::hard : BlendMode::feather;
  out.strict = options.strict;
  if (options.loop) out.loop = *options.loop == protocol::Loop::forward ? LoopMode::forward : LoopMode::pingpong;
  out.fps = options.fps;
  if (options.box) out.box = FaceBox{options.box->top, options.box->bottom, options.box->left, options.box->right};
  out.smooth = !options.nosmooth;
  out.generator = options.generator.value_or("");
  out.detector = options.detector.value_or("");
  out.avatar_cache = options.avatar_cache;
  out.silence_gate.enabled = options.silence_gate;
  out.enhance = options.enhance;
  if (options.crf) out.encode.crf = *options.crf;
  out.encode.lossless = options.lossless;
  if (options.preset) out.encode.preset = *options.preset;
  return out;
}

}  // namespace heygem::pipeline
