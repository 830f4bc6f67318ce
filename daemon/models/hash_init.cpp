#include "daemon/models/hash_init.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <set>

namespace heygem::models {
namespace {

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string prefix_of(const std::string& name) {
  auto dot = name.rfind('.');
  return dot == std::string::npos ? std::string() : name.substr(0, dot + 1);
}

bool is_l2norm_scale(const std::string& name) {
  return name == "conv3_3_norm.weight" || name == "conv4_3_norm.weight" || name == "conv5_3_norm.weight";
}

// Rules 2-8 of the spec: the float64 value of one element before the gain.
double rule_value(const std::string& name, bool batchnorm, at::IntArrayRef shape, int64_t numel, double u) {
  const double v = 2.0 * u - 1.0;
  if (ends_with(name, "running_mean")) return 0.1 * v;
  if (ends_with(name, "running_var")) return 0.5 + u;
  if (batchnorm && ends_with(name, ".weight")) return 1.0 + 0.1 * v;
  if (batchnorm && ends_with(name, ".bias")) return 0.1 * v;
  if (is_l2norm_scale(name)) return 5.0 + v;
  if (shape.size() >= 2) {
    const int64_t fan_in = numel / shape[0];
    return v * std::sqrt(6.0 / static_cast<double>(fan_in));
  }
  return 0.1 * v;
}

}  // namespace

double hash_init_uniform(std::uint64_t k, std::uint64_t i, std::uint32_t seed) {
  std::uint32_t x = static_cast<std::uint32_t>(i) * 0x9E3779B1u + static_cast<std::uint32_t>(k + 1) * 0x85EBCA77u +
                    seed * 0xC2B2AE3Du;
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return static_cast<double>(x) / 4294967296.0;
}

StateDict hash_init(const StateDict& layout, const HashInitSpec& spec) {
  std::set<std::string> batchnorm_prefixes;
  for (const auto& [name, tensor] : layout)
    if (ends_with(name, "running_var")) batchnorm_prefixes.insert(prefix_of(name));

  StateDict out;
  out.reserve(layout.size());
  for (std::size_t k = 0; k < layout.size(); ++k) {
    const auto& [name, like] = layout[k];
    if (ends_with(name, "num_batches_tracked")) {
      out.emplace_back(name, at::zeros(like.sizes(), at::kLong));
      continue;
    }
    const bool batchnorm = batchnorm_prefixes.count(prefix_of(name)) > 0;
    auto gain = spec.gain_log2.find(name);
    const double scale = gain == spec.gain_log2.end() ? 1.0 : std::ldexp(1.0, gain->second);
    at::Tensor values = at::empty(like.sizes(), at::kFloat);
    float* data = values.data_ptr<float>();
    const int64_t numel = values.numel();
    for (int64_t i = 0; i < numel; ++i) {
      const double u = hash_init_uniform(k, static_cast<std::uint64_t>(i), spec.seed);
      data[i] = static_cast<float>(rule_value(name, batchnorm, like.sizes(), numel, u) * scale);
    }
    out.emplace_back(name, values);
  }
  return out;
}

}  // namespace heygem::models
