// Linked into every test binary: a crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) prints where it
// happened to stderr before the process dies, so a failure on a remote machine without gdb (the GPU
// box) still says where: the faulting address, the instruction pointer and the library holding it
// (dladdr; a crash inside a library without unwind information, such as the CUDA driver, stops
// backtrace() at the signal frame), the thread, then the stack. Test binaries export their symbols
// (ENABLE_EXPORTS) so the frames carry function names. stdout is line-buffered from the start, so
// the test's own last lines ("[       OK ]", a crash at exit) are not lost with the process.
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace {

void write_text(const char* text) { (void)!write(STDERR_FILENO, text, std::strlen(text)); }

uintptr_t instruction_pointer(const void* context) {
#if defined(__x86_64__)
  return static_cast<uintptr_t>(static_cast<const ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(static_cast<const ucontext_t*>(context)->uc_mcontext.pc);
#else
  (void)context;
  return 0;
#endif
}

// snprintf is not async-signal-safe in theory; the process is about to die either way, and these
// lines are what makes the crash debuggable.
void describe_fault(int signal_number, const siginfo_t* info, const void* context) {
  char line[512];
  std::snprintf(line, sizeof line, "\n*** heygem test crashed with signal %s (fault address %p) in thread %ld of %ld\n",
                strsignal(signal_number), info ? info->si_addr : nullptr, static_cast<long>(syscall(SYS_gettid)),
                static_cast<long>(getpid()));
  write_text(line);
  const uintptr_t pc = instruction_pointer(context);
  Dl_info where{};
  if (pc != 0 && dladdr(reinterpret_cast<void*>(pc), &where) != 0) {
    const auto base = reinterpret_cast<uintptr_t>(where.dli_fbase);
    std::snprintf(line, sizeof line, "*** at pc 0x%" PRIxPTR " = %s+0x%" PRIxPTR " (%s)\n", pc,
                  where.dli_fname ? where.dli_fname : "?", pc - base, where.dli_sname ? where.dli_sname : "no symbol");
  } else {
    std::snprintf(line, sizeof line, "*** at pc 0x%" PRIxPTR " (in no loaded object)\n", pc);
  }
  write_text(line);
}

void print_backtrace_and_die(int signal_number, siginfo_t* info, void* context) {
  describe_fault(signal_number, info, context);
  write_text("*** stack:\n");
  void* frames[64];
  const int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  signal(signal_number, SIG_DFL);  // the default action: core dump / termination with the signal
  raise(signal_number);
}

struct CrashBacktrace {
  CrashBacktrace() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    struct sigaction action{};
    action.sa_sigaction = print_backtrace_and_die;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    for (int signal_number : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(signal_number, &action, nullptr);
  }
};
const CrashBacktrace install_at_start;

}  // namespace
