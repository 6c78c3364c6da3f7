// The one thread that runs every forward pass of the server. libgomp keeps a pool of worker
// threads for each thread that opens a parallel region. If every request thread ran its own
// passes, a server with N requests would own N pools, more threads than cores, and libgomp then
// parks its workers right after each region (a futex wake per matmul, a few hundred per pass)
// instead of letting them spin for the next. Passes handed to this thread share one pool.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace optiq::serve {

class EngineThread {
 public:
  EngineThread();
  EngineThread(const EngineThread&) = delete;
  EngineThread& operator=(const EngineThread&) = delete;
  // Runs what is queued, then joins the thread.
  ~EngineThread();

  // Runs `work` on the engine thread after the work queued before it and returns when it is
  // done, rethrowing what it threw. Callers are served in the order they called.
  void run(const std::function<void()>& work);

 private:
  struct Job {
    const std::function<void()>* work = nullptr;
    bool done = false;
    std::exception_ptr error;
  };
  void loop();

  std::mutex mutex_;
  std::condition_variable queued_;    // a job was queued, or stop_ set
  std::condition_variable finished_;  // a job is done
  std::deque<Job*> queue_;            // jobs not started yet, oldest first
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace optiq::serve
