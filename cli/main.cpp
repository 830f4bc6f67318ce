// heygemctl: the command-line client of heygemd. Everything lives in heygem_cli.
#include <unistd.h>

#include <iostream>
#include <system_error>

#include "cli/commands/commands.hpp"

int main(int argc, char** argv) {
  std::error_code ignored;
  heygem::cli::Io io{std::cout, std::cerr, ::isatty(STDOUT_FILENO) == 1, heygem::SocketEnvironment::current(),
                     std::filesystem::current_path(ignored)};
  return heygem::cli::run(argc, argv, io);
}
