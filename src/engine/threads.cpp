#include "engine/threads.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>

namespace optiq::engine {
namespace {

std::atomic<int> g_threads{0};  // 0: not set, use the number of cores

}  // namespace

void set_num_threads(int n) { g_threads = n > 0 ? n : 0; }

int num_threads() {
  // Once per process: OpenBLAS's own pool would otherwise start one thread per core inside
  // every sgemm that an OpenMP thread makes.
  static const bool blas_single = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)blas_single;
  const int n = g_threads;
  return n > 0 ? n : omp_get_num_procs();
}

}  // namespace optiq::engine
