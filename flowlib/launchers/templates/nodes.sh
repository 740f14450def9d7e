# Finding the nodes of the batch job this runs in (unique names, first seen first).
flowlib_unique_hosts() { awk 'NF && !seen[$1]++ { print $1 }' "$1"; }
flowlib_slurm_nodes() {
    flowlib_list=${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}
    [ -z "$flowlib_list" ] || scontrol show hostnames "$flowlib_list"
}
flowlib_job_nodes() {
    if [ -n "${PBS_NODEFILE:-}" ]; then
        flowlib_unique_hosts "$PBS_NODEFILE"
    elif [ -n "${SLURM_JOB_NODELIST:-${SLURM_NODELIST:-}}" ]; then
        flowlib_slurm_nodes
    elif [ -n "${PE_HOSTFILE:-}" ]; then
        flowlib_unique_hosts "$PE_HOSTFILE"
    fi
}
# flowlib_block_nodes COUNT FINDER: the first COUNT nodes that FINDER prints, or nothing
# when FINDER finds no batch job; an error when the job has fewer than COUNT nodes.
flowlib_block_nodes() {
    flowlib_found=$("$2") || { echo "flowlib @{launcher}: cannot list the nodes of this job" >&2; return 1; }
    [ -n "$flowlib_found" ] || return 0
    flowlib_count=$(printf '%s\n' "$flowlib_found" | wc -l)
    if [ "$flowlib_count" -lt "$1" ]; then
        echo "flowlib @{launcher}: the block needs $1 nodes, this job has $flowlib_count:" $flowlib_found >&2
        return 1
    fi
    printf '%s\n' "$flowlib_found" | head -n "$1"
}
