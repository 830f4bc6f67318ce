# Sourced by the benchmarks: sets floor_crf and floor_preset to heygem's own encoder defaults
# (EncodeOptions in daemon/pipeline/item_options.hpp), so the x264 floor re-encodes as heygem does.
# Usage: encode_defaults REPO_ROOT; returns 1 naming the header when they cannot be read.
encode_defaults() {
  local options=$1/daemon/pipeline/item_options.hpp
  floor_crf=$(sed -n '/struct EncodeOptions/,/};/s/^ *int crf = \([0-9]*\);.*/\1/p' "$options")
  floor_preset=$(sed -n '/struct EncodeOptions/,/};/s/^ *std::string preset = "\([a-z]*\)";.*/\1/p' "$options")
  [[ -n $floor_crf && -n $floor_preset ]] || { echo "$options: EncodeOptions crf/preset defaults not found" >&2; return 1; }
}
