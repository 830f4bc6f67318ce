#include "daemon/models/state_dict.hpp"

#include <torch/torch.h>

#include <map>
#include <sstream>

#include "common/errors.hpp"

namespace heygem::models {
namespace {

void collect(const torch::nn::Module& module, const std::string& prefix, StateDict& out) {
  for (const auto& item : module.named_parameters(/*recurse=*/false))
    out.emplace_back(prefix + item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/false))
    out.emplace_back(prefix + item.key(), item.value());
  for (const auto& child : module.named_children())
    collect(*child.value(), prefix + child.key() + ".", out);
}

std::string shape_text(at::IntArrayRef sizes) {
  std::ostringstream text;
  text << '[';
  for (size_t i = 0; i < sizes.size(); ++i) text << (i ? "," : "") << sizes[i];
  text << ']';
  return text.str();
}

[[noreturn]] void fail(std::string_view model, const std::string& what) {
  throw Error(ErrorCode::invalid_input, std::string(model) + ": " + what);
}

}  // namespace

StateDict module_state_dict(const torch::nn::Module& module) {
  StateDict out;
  collect(module, "", out);
  return out;
}

void load_into(torch::nn::Module& module, const StateDict& weights, std::string_view model_name) {
  StateDict targets = module_state_dict(module);
  std::map<std::string, const at::Tensor*> source;
  for (const auto& [name, tensor] : weights) source.emplace(name, &tensor);

  // Validate everything before touching the module, so a failure leaves it as it was.
  for (const auto& [name, target] : targets) {
    auto found = source.find(name);
    if (found == source.end()) fail(model_name, "missing key " + name);
    const at::Tensor& given = *found->second;
    if (!given.sizes().equals(target.sizes()))
      fail(model_name, name + ": expected " + shape_text(target.sizes()) + ", got " +
                           shape_text(given.sizes()));
    source.erase(found);
  }
  if (!source.empty()) fail(model_name, "unexpected key " + source.begin()->first);

  torch::NoGradGuard no_grad;
  std::map<std::string, const at::Tensor*> lookup;
  for (const auto& [name, tensor] : weights) lookup.emplace(name, &tensor);
  for (auto& [name, target] : targets) target.copy_(*lookup.at(name));
}

}  // namespace heygem::models
