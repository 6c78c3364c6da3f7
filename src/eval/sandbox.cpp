#include "eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "util/error.h"

namespace optiq::eval {
namespace {

constexpr uid_t kNobody = 65534;

// Prepended when no network namespace could be made.
constexpr const char* kSocketBlock =
    "import socket as _s\n"
    "def _blocked(*a, **k):\n"
    "    raise OSError('network access is blocked in the optiq sandbox')\n"
    "_s.socket = _blocked\n_s.create_connection = _blocked\n_s.socketpair = _blocked\n"
    "del _s, _blocked\n";

std::string python_path(const SandboxLimits& limits) {
  if (!limits.python.empty()) return limits.python;
  for (const char* p : {"/usr/bin/python3", "/usr/local/bin/python3"})
    if (access(p, X_OK) == 0) return p;
  return "python3";
}

void set_limit(int resource, rlim_t value) {
  const rlimit r{value, value};
  setrlimit(resource, &r);
}

// Plain syscalls only: it also runs in a forked child of a multithreaded process.
bool write_file(const char* path, const std::string& text) {
  const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  return done == text.size();
}

// In the child: limits, identity, then exec. Never returns.
// argv: python, "-I", "program.py", the caller's arguments, nullptr (built before fork).
[[noreturn]] void exec_python(const std::vector<const char*>& argv, const SandboxLimits& limits, bool drop_to_nobody) {
  set_limit(RLIMIT_CPU, static_cast<rlim_t>(limits.cpu_seconds));
  set_limit(RLIMIT_AS, limits.address_space_bytes);
  set_limit(RLIMIT_FSIZE, limits.file_size_bytes);
  set_limit(RLIMIT_CORE, 0);
  if (drop_to_nobody) {
    if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(126);
  }
  // After setuid: RLIMIT_NPROC counts the processes of the new user.
  set_limit(RLIMIT_NPROC, limits.max_processes);
  char* const envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>("HOME=/nonexistent"),
                        const_cast<char*>("LANG=C.UTF-8"), nullptr};
  execve(argv[0], const_cast<char* const*>(argv.data()), envp);
  execvpe("python3", const_cast<char* const*>(argv.data()), envp);
  _exit(127);
}

// Child with namespaces: this process is PID 1 of the new PID namespace.
[[noreturn]] void run_in_namespaces(const std::string& program, const std::vector<const char*>& argv,
                                   const SandboxLimits& limits) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(125);
  for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"})
    if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777") != 0 && std::strcmp(dir, "/tmp") == 0)
      _exit(125);
  const char* work = "/tmp/optiq-sandbox";
  if (mkdir(work, 0755) != 0 || chdir(work) != 0 || !write_file("program.py", program)) _exit(125);
  const bool root = geteuid() == 0;
  if (root && chown(work, kNobody, kNobody) != 0) _exit(125);
  // PID 1 of the namespace: fork the program so that its exit, or our death, ends the namespace.
  const pid_t child = fork();
  if (child < 0) _exit(125);
  if (child == 0) exec_python(argv, limits, root);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

bool try_namespaces() {
  if (geteuid() == 0) return unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) == 0;
  return false;
}

Isolation probe_isolation() {
  // A throwaway child tries the unshare that run_python_sandboxed will try.
  const pid_t pid = fork();
  if (pid < 0) return Isolation::LimitsOnly;
  if (pid == 0) _exit(try_namespaces() ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? Isolation::Namespaces : Isolation::LimitsOnly;
}

}  // namespace

std::string describe_isolation(Isolation isolation) {
  return isolation == Isolation::Namespaces
             ? "network, PID and mount namespaces (private tmpfs /tmp as working directory), user nobody, rlimits"
             : "rlimits only; network blocked inside Python; writes outside the working directory not prevented";
}

SandboxResult run_python_sandboxed(const std::string& program, const SandboxLimits& limits) {
  static const Isolation isolation = probe_isolation();
  SandboxResult res;
  res.isolation = isolation;
  const std::string python = python_path(limits);
  std::filesystem::path workdir;  // LimitsOnly: the directory we create and remove
  std::string source = program;
  if (isolation == Isolation::LimitsOnly) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "optiq-sandbox-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw RuntimeError("sandbox: cannot create a temporary directory");
    workdir = tmpl;
    source = std::string(kSocketBlock) + program;
    if (!write_file((workdir / "program.py").c_str(), source)) {
      std::filesystem::remove_all(workdir);
      throw RuntimeError("sandbox: cannot write the program");
    }
  }
  std::vector<const char*> argv = {python.c_str(), "-I", "program.py"};
  for (const std::string& a : limits.args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw RuntimeError("sandbox: pipe failed");
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    if (!workdir.empty()) std::filesystem::remove_all(workdir);
    throw RuntimeError("sandbox: fork failed");
  }
  if (pid == 0) {
    setpgid(0, 0);
    const int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    if (isolation == Isolation::Namespaces) {
      if (!try_namespaces()) _exit(125);
      const pid_t init = fork();  // becomes PID 1 of the new PID namespace
      if (init < 0) _exit(125);
      if (init == 0) run_in_namespaces(source, argv, limits);
      int status = 0;
      while (waitpid(init, &status, 0) < 0 && errno == EINTR) {
      }
      _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    if (chdir(workdir.c_str()) != 0) _exit(125);
    exec_python(argv, limits, false);
  }
  setpgid(pid, pid);  // also from here, so the group exists before any kill
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);  // a straggler holding the pipe never blocks the reads
  const auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<double>(limits.wall_seconds));
  int status = 0;
  bool reaped = false, pipe_open = true;
  char buf[4096];
  while (!reaped) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      kill(-pid, SIGKILL);
      res.timed_out = true;
      waitpid(pid, &status, 0);
      reaped = true;
      break;
    }
    if (pipe_open) {
      pollfd p{fds[0], POLLIN, 0};
      const int wait_ms = static_cast<int>(std::min<int64_t>(
          50, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
      if (poll(&p, 1, wait_ms) > 0) {
        const ssize_t n = read(fds[0], buf, sizeof buf);
        if (n > 0) {
          const size_t room = limits.max_output_bytes - std::min(limits.max_output_bytes, res.output.size());
          res.output.append(buf, std::min(room, static_cast<size_t>(n)));
        } else {
          pipe_open = false;
        }
      }
    } else {
      usleep(20000);
    }
    if (waitpid(pid, &status, WNOHANG) == pid) reaped = true;
  }
  // Stragglers the program left in its group (no PID namespace to end them).
  kill(-pid, SIGKILL);
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0 && res.output.size() < limits.max_output_bytes;)
    res.output.append(buf, std::min(limits.max_output_bytes - res.output.size(), static_cast<size_t>(n)));
  close(fds[0]);
  res.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!res.timed_out) {
    res.exited = true;
    res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  if (!workdir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(workdir, ec);
  }
  return res;
}

}  // namespace optiq::eval
