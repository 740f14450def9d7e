(
@{trace}
@{node_functions}
if ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    echo "flowlib GnuParallelLauncher: the 'parallel' on PATH is not GNU parallel" >&2
    exit 1
fi
flowlib_nodes=$(flowlib_block_nodes @{nodes_per_block} flowlib_job_nodes) || exit 1
flowlib_per_node=@{tasks_per_node}
if [ -z "$flowlib_nodes" ]; then
    # Not inside a batch job: every copy runs on this machine.
    flowlib_nodes=localhost
    flowlib_per_node=@{total}
fi
flowlib_loginfile=$(mktemp "${TMPDIR:-/tmp}/flowlib-sshlogins.XXXXXX") || exit 1
trap 'rm -f "$flowlib_loginfile"' EXIT
flowlib_here=$(hostname)
flowlib_here_short=$(hostname -s 2>/dev/null || echo "$flowlib_here")
for flowlib_node in $flowlib_nodes; do
    # ":" is GNU parallel's name for this machine: no ssh to ourselves.
    case $flowlib_node in
        "$flowlib_here" | "$flowlib_here_short" | localhost) echo ":" ;;
        *) echo "$flowlib_node" ;;
    esac
done >"$flowlib_loginfile"
FLOWLIB_LAUNCH_COMMAND=@{command}
export FLOWLIB_LAUNCH_COMMAND
# Name the shell for the remote side: GNU parallel otherwise runs each remote copy with the
# remote $SHELL and, when that is unset, silently runs nothing and still exits 0.
PARALLEL_SHELL=/bin/bash
export PARALLEL_SHELL
parallel --will-cite --jobs "$flowlib_per_node" --sshloginfile "$flowlib_loginfile" --workdir . \
    --env PATH --env FLOWLIB_LAUNCH_COMMAND --line-buffer -N0 \
    'exec /bin/bash -c "$FLOWLIB_LAUNCH_COMMAND"' ::: $(seq @{total}) </dev/null
)
