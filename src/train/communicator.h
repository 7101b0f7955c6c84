// Collective operations between the processes of one training job. The default is a single
// process; MpiCommunicator (mpi_communicator.h, built when OpenMPI is found) spans `mpirun`.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace tessera::train {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Element-wise sum over every process, in place; same result bits on every rank.
  virtual void allreduce_sum(double* data, size_t n) = 0;
  virtual void allreduce_sum(float* data, size_t n) = 0;
  // Root's bytes copied to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
};

// One process: allreduce and broadcast leave the data as it is.
std::unique_ptr<Communicator> make_local_communicator();

// `n` communicators of one group for n threads of this process, standing in for n processes
// (tests of the multi-process step without mpirun). Sums run in rank order on every member,
// so every rank gets the same bits. Each member must be used by its own thread.
std::vector<std::unique_ptr<Communicator>> make_thread_group(int n);

}  // namespace tessera::train
