// A Communicator over MPI (OpenMPI, found by CMake's find_package(MPI)), for
// `mpirun -np N tessera train ...`. Without MPI at build time, make_mpi_communicator() returns
// nullptr and mpi_available() is false.
//
// Determinism: allreduce_sum reduces to rank 0 in rank order and broadcasts the result, so
// every rank holds the same bits (MPI_Allreduce alone does not promise that).
#pragma once
#include <memory>

#include "train/communicator.h"

namespace tessera::train {

bool mpi_available();
// True when this process was started by mpirun as part of a job of more than one process
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_SIZE > 1).
bool launched_by_mpirun();
// Initialises MPI (once per process) and returns the world communicator; MPI is finalised when
// the last communicator is destroyed. nullptr when built without MPI.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace tessera::train
