// How many threads the engine's matmuls use (OpenMP over output rows). OpenBLAS is kept to one
// thread of its own: each OpenMP thread calls sgemm on its share of the rows, so the two thread
// pools never compete for the cores.
#pragma once

namespace optiq::engine {

// n >= 1 threads for later matmuls; n <= 0 restores the default (the number of cores).
void set_num_threads(int n);
int num_threads();

}  // namespace optiq::engine
