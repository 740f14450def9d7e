(
@{trace}
@{node_functions}
flowlib_nodes=$(flowlib_block_nodes @{nodes_per_block} flowlib_job_nodes) || exit 1
flowlib_per_node=@{tasks_per_node}
if [ -z "$flowlib_nodes" ]; then
    # Not inside a batch job: every copy runs on this machine.
    flowlib_nodes=localhost
    flowlib_per_node=@{total}
fi
flowlib_hostfile=$(mktemp "${TMPDIR:-/tmp}/flowlib-hosts.XXXXXX") || exit 1
trap 'rm -f "$flowlib_hostfile"' EXIT
if mpiexec --version 2>&1 | grep -q -e 'Open MPI' -e 'OpenRTE'; then
    # Open MPI: the hostfile gives each node its number of slots.
    for flowlib_node in $flowlib_nodes; do
        echo "$flowlib_node slots=$flowlib_per_node"
    done >"$flowlib_hostfile"
    flowlib_placement=
else
    # MPICH, Intel MPI, Cray PALS: one node a line, copies per node from -ppn.
    printf '%s\n' $flowlib_nodes >"$flowlib_hostfile"
    @{ppn_placement}
fi
mpiexec -n @{total} @{bind} --hostfile "$flowlib_hostfile" $flowlib_placement @{overrides} /bin/bash -c @{command}
)
