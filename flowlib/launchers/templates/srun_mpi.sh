(
@{trace}
@{node_functions}
@{wait_functions}
flowlib_nodes=$(flowlib_block_nodes @{nodes_per_block} flowlib_slurm_nodes) || exit 1
if [ -z "$flowlib_nodes" ]; then
    echo "flowlib SrunMPILauncher: not inside a Slurm job (SLURM_JOB_NODELIST is not set)" >&2
    exit 1
fi
for flowlib_node in $flowlib_nodes; do
    flowlib_starting || break
    srun --nodes=1 --ntasks=@{tasks_per_node} --nodelist="$flowlib_node" --overlap --label @{overrides} /bin/bash -c @{command} &
    flowlib_started $!
done
flowlib_first=0
for flowlib_pid in $flowlib_pids; do
    flowlib_wait "$flowlib_pid"
    flowlib_status=$?
    [ "$flowlib_first" -ne 0 ] || flowlib_first=$flowlib_status
done
exit "$flowlib_first"
)
