/* A minimal MPI program for tests/htex/test_mpi_executor.py: every rank prints one line,
 * "hello from rank R of N on HOST", after a collective call that needs all ranks alive. */
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int rank = 0, size = 0, length = 0, total = 0;
    char host[MPI_MAX_PROCESSOR_NAME];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &length);
    /* Sum of the ranks: wrong unless every rank took part in one communicator. */
    MPI_Allreduce(&rank, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (total != size * (size - 1) / 2) {
        fprintf(stderr, "rank %d: sum of ranks %d, expected %d\n", rank, total, size * (size - 1) / 2);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    printf("hello from rank %d of %d on %s\n", rank, size, host);
    MPI_Finalize();
    return 0;
}
