// The HumanEval sandbox against hostile programs: each must be contained (the machine and the
// test process unharmed, nothing left behind) and reported as a failure.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "eval/humaneval.h"
#include "eval/sandbox.h"
#include "test_util.h"

namespace optiq::eval {
namespace {

// Each run carries this test process's id as an argument, so that leftovers are recognized
// even while other tests run sandboxes at the same time.
std::string run_tag() { return "optiq-sandbox-test-" + std::to_string(getpid()); }

SandboxLimits quick_limits() {
  SandboxLimits l;
  l.wall_seconds = 3;
  l.cpu_seconds = 2;
  l.args = {run_tag()};
  return l;
}

// Processes still running one of this test's programs (they would be leftovers of an escape).
int sandbox_processes_left() {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(run_tag()) != std::string::npos) ++n;
  }
  return n;
}

TEST(Sandbox, RunsAProgramAndCapturesItsOutput) {
  const SandboxResult r = run_python_sandboxed("import os\nprint('hello', len(os.listdir('.')))\n", quick_limits());
  EXPECT_TRUE(r.passed()) << r.output;
  EXPECT_EQ(r.output, "hello 1\n");  // a fresh directory: only program.py
  std::printf("isolation: %s\n", describe_isolation(r.isolation).c_str());
}

TEST(Sandbox, FailingProgramIsAFailure) {
  const SandboxResult r = run_python_sandboxed("assert 1 == 2\n", quick_limits());
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("AssertionError"), std::string::npos);
}

TEST(Sandbox, InfiniteLoopIsKilled) {
  const SandboxResult r = run_python_sandboxed("while True:\n    pass\n", quick_limits());
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.wall_seconds, 4.0);
}

TEST(Sandbox, SleepingPastTheWallLimitIsKilled) {
  const SandboxResult r = run_python_sandboxed("import time\ntime.sleep(60)\n", quick_limits());
  EXPECT_TRUE(r.timed_out);
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.wall_seconds, 4.0);
}

TEST(Sandbox, ForkBombIsContained) {
  const SandboxResult r = run_python_sandboxed(
      "import os, time\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError:\n"
      "        time.sleep(0.01)\n",
      quick_limits());
  EXPECT_FALSE(r.passed());
  EXPECT_LT(r.wall_seconds, 5.0);
  usleep(200000);
  EXPECT_EQ(sandbox_processes_left(), 0);
}

TEST(Sandbox, BackgroundChildDoesNotOutliveTheRun) {
  const SandboxResult r = run_python_sandboxed(
      "import os, time\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    time.sleep(30)\n",
      quick_limits());
  usleep(200000);
  if (r.isolation == Isolation::Namespaces) EXPECT_EQ(sandbox_processes_left(), 0);
  else GTEST_SKIP() << "without a PID namespace a setsid() child can leave the process group";
}

TEST(Sandbox, NetworkIsUnreachable) {
  // A listener on the host's loopback: the sandboxed program must not reach it.
  const int server = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ASSERT_GE(server, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(server, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  const SandboxResult r = run_python_sandboxed(
      "import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(port) + "), timeout=1)\nprint('connected')\n",
      quick_limits());
  EXPECT_FALSE(r.passed()) << r.output;
  EXPECT_EQ(r.output.find("connected"), std::string::npos);
  EXPECT_LT(accept(server, nullptr, nullptr), 0);  // nobody knocked
  close(server);
}

TEST(Sandbox, WritingOutsideItsDirectoryFails) {
  test::ScratchDir dir;
  const std::string target = (dir / "escaped.txt").string();
  const SandboxResult r = run_python_sandboxed("open('" + target + "', 'w').write('x')\n", quick_limits());
  if (r.isolation != Isolation::Namespaces)
    GTEST_SKIP() << "without a mount namespace the test's own scratch directory is writable";
  EXPECT_FALSE(r.passed()) << r.output;
  EXPECT_FALSE(std::filesystem::exists(target));
  const SandboxResult etc = run_python_sandboxed("open('/etc/optiq-sandbox-escape', 'w').write('x')\n", quick_limits());
  EXPECT_FALSE(etc.passed());
  EXPECT_FALSE(std::filesystem::exists("/etc/optiq-sandbox-escape"));
}

TEST(Sandbox, HugeAllocationFails) {
  const SandboxResult r = run_python_sandboxed("x = bytearray(8 * 1024 ** 3)\nprint('allocated')\n", quick_limits());
  EXPECT_FALSE(r.passed());
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
}

TEST(Sandbox, HugeFileIsCut) {
  SandboxLimits l = quick_limits();
  l.file_size_bytes = 1 << 20;
  const SandboxResult r = run_python_sandboxed("open('big', 'wb').write(b'x' * (4 << 20))\n", l);
  EXPECT_FALSE(r.passed());
}

TEST(HumanEval, CanonicalSolutionPassesAndAWrongOneFails) {
  const auto problems = humaneval::load(test::shared_dir() / "data/humaneval/HumanEval-first40.jsonl.gz");
  ASSERT_EQ(problems.size(), 40u);
  const humaneval::Problem& p = problems[0];
  EXPECT_EQ(p.entry_point, "has_close_elements");
  const humaneval::Outcome good = humaneval::check(p, p.canonical_solution, quick_limits());
  EXPECT_TRUE(good.passed) << good.result << "\n" << good.run.output;
  EXPECT_EQ(good.result, "passed");
  const humaneval::Outcome bad = humaneval::check(p, "    return False\n", quick_limits());
  EXPECT_FALSE(bad.passed);
  EXPECT_EQ(bad.result, "failed: AssertionError");
}

TEST(HumanEval, CompletionStopsAtTheNextTopLevelStatement) {
  EXPECT_EQ(humaneval::truncate_completion("    return 1\n\ndef other():\n    pass"), "    return 1\n");
  EXPECT_EQ(humaneval::truncate_completion("    return 1\nif __name__ == '__main__':\n"), "    return 1");
  EXPECT_EQ(humaneval::truncate_completion("    x = 1\n    # keep\n    return x"), "    x = 1\n    # keep\n    return x");
}

}  // namespace
}  // namespace optiq::eval
