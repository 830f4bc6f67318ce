#pragma once
// Human output of status, list and models.
#include <string>

#include "common/protocol.hpp"

namespace heygem::cli::render {

std::string job_details(const protocol::JobStatus& job);
std::string job_table(const protocol::ListResponse& list);
std::string model_table(const protocol::ModelsResponse& models);  // like `ollama ps`

}  // namespace heygem::cli::render
