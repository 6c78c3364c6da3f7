// Running untrusted Python (model-written code) in a child process that cannot harm the machine.
// The child gets its own process group, resource limits (CPU seconds, address space, processes,
// file size), stdin from /dev/null, and is killed with its whole group when the wall-clock limit
// passes. What else holds depends on the privileges optiq runs with (Isolation says which):
//  - Namespaces (root, or where unprivileged user namespaces work as root inside them): new
//    network namespace (no interface up, not even the host's loopback), new PID namespace (the
//    program's processes die with it), new mount namespace with fresh tmpfs over /tmp, /var/tmp
//    and /dev/shm; the working directory is created in that /tmp and vanishes with it. Under
//    root the program runs as user nobody (65534), so it cannot write outside those tmpfs.
//  - Limits only: where no namespace can be made. The network is blocked inside Python (socket
//    creation raises), which code can undo; writing outside the working directory is limited only
//    by file permissions and the file-size limit; the working directory is a fresh directory
//    under the system temp folder, removed afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace optiq::eval {

struct SandboxLimits {
  double wall_seconds = 10;                      // killed (whole group) after this
  int cpu_seconds = 10;                          // RLIMIT_CPU of the program
  uint64_t address_space_bytes = 1ull << 30;     // RLIMIT_AS: 1 GiB
  uint64_t file_size_bytes = 16ull << 20;        // RLIMIT_FSIZE: largest file it may write
  uint64_t max_processes = 16;                   // RLIMIT_NPROC (of user nobody under root)
  size_t max_output_bytes = 64 << 10;            // stdout+stderr kept, the rest dropped
  std::string python;                            // interpreter; empty: /usr/bin/python3, else python3 on PATH
  std::vector<std::string> args;                 // sys.argv[1:] of the program
};

enum class Isolation { Namespaces, LimitsOnly };

struct SandboxResult {
  bool exited = false;       // ended by itself (not killed by the wall limit)
  int exit_code = -1;        // its exit status; 128 + signal when a signal ended it
  bool timed_out = false;    // killed at the wall limit
  std::string output;        // stdout and stderr interleaved, at most max_output_bytes
  double wall_seconds = 0;   // how long it ran
  Isolation isolation = Isolation::LimitsOnly;
  bool passed() const { return exited && exit_code == 0; }
};

// Runs `program` (Python source) as <cwd>/program.py. Throws RuntimeError when no child can be
// started at all (fork or pipe failure).
SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits = {});

// "network, PID and mount namespaces; user nobody; rlimits" or "rlimits; Python-level socket
// block" — what run_python_sandboxed enforces on this machine (it probes once).
std::string describe_isolation(Isolation isolation);

}  // namespace optiq::eval
