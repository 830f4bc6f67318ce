// Linked into every test binary: a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints the
// stack to stderr before the process dies, so a failure on a remote machine without gdb (the GPU
// box) still says where it happened. Test binaries export their symbols (ENABLE_EXPORTS) so the
// frames carry function names.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

namespace {

void print_backtrace_and_die(int signal_number) {
  constexpr char kHeader[] = "\n*** heygem test crashed with signal ";
  (void)!write(STDERR_FILENO, kHeader, sizeof kHeader - 1);
  const char* name = strsignal(signal_number);
  (void)!write(STDERR_FILENO, name, std::strlen(name));
  (void)!write(STDERR_FILENO, "; stack:\n", 9);
  void* frames[64];
  const int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  signal(signal_number, SIG_DFL);  // the default action: core dump / termination with the signal
  raise(signal_number);
}

struct CrashBacktrace {
  CrashBacktrace() {
    for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(signal_number, print_backtrace_and_die);
  }
};
const CrashBacktrace install_at_start;

}  // namespace
