#include "train/mpi_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "support/error.h"

#ifdef TESSERA_HAVE_MPI
#include <mpi.h>
#endif

namespace tessera::train {

bool launched_by_mpirun() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* v = std::getenv(var);
    if (v && std::atoi(v) > 1) return true;
  }
  return false;
}

#ifdef TESSERA_HAVE_MPI

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail_code(ErrorCode::kInternal, "MPI ", what, " failed: ", std::string(msg, static_cast<size_t>(len)));
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator() {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) check(MPI_Init(nullptr, nullptr), "Init");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "Comm_size");
  }
  ~MpiCommunicator() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allreduce_sum(double* data, size_t n) override { reduce(data, n, MPI_DOUBLE); }
  void allreduce_sum(float* data, size_t n) override { reduce(data, n, MPI_FLOAT); }

  void broadcast(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    // MPI counts are int: send in chunks below 1 GiB.
    for (size_t off = 0; off < bytes;) {
      int chunk = static_cast<int>(std::min<size_t>(bytes - off, size_t{1} << 30));
      check(MPI_Bcast(p + off, chunk, MPI_BYTE, root, MPI_COMM_WORLD), "Bcast");
      off += static_cast<size_t>(chunk);
    }
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "Barrier"); }

 private:
  template <typename T>
  void reduce(T* data, size_t n, MPI_Datatype type) {
    if (size_ == 1 || n == 0) return;
    // Rank 0 gathers every contribution and adds them in rank order: the sum's bits do not
    // depend on the MPI library's reduction tree.
    std::vector<T> all(rank_ == 0 ? n * static_cast<size_t>(size_) : 0);
    for (size_t off = 0; off < n;) {
      int chunk = static_cast<int>(std::min<size_t>(n - off, size_t{1} << 26));
      if (rank_ == 0) {
        std::vector<T> part(static_cast<size_t>(chunk) * static_cast<size_t>(size_));
        check(MPI_Gather(data + off, chunk, type, part.data(), chunk, type, 0, MPI_COMM_WORLD), "Gather");
        for (int i = 0; i < chunk; ++i) {
          T s = part[static_cast<size_t>(i)];
          for (int r = 1; r < size_; ++r) s += part[static_cast<size_t>(r) * static_cast<size_t>(chunk) + static_cast<size_t>(i)];
          data[off + static_cast<size_t>(i)] = s;
        }
      } else {
        check(MPI_Gather(data + off, chunk, type, nullptr, chunk, type, 0, MPI_COMM_WORLD), "Gather");
      }
      check(MPI_Bcast(data + off, chunk, type, 0, MPI_COMM_WORLD), "Bcast");
      off += static_cast<size_t>(chunk);
    }
  }

  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() { return true; }
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

#else

bool mpi_available() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator() { return nullptr; }

#endif

}  // namespace tessera::train
