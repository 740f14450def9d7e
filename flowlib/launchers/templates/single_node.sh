(
@{trace}
@{wait_functions}
flowlib_rank=0
while [ "$flowlib_rank" -lt @{total} ] && flowlib_starting; do
    FLOWLIB_TASK_RANK=$flowlib_rank FLOWLIB_TASK_COUNT=@{total} /bin/bash -c @{command} &
    flowlib_started $!
    flowlib_rank=$((flowlib_rank + 1))
done
flowlib_failed=0
flowlib_first=0
for flowlib_pid in $flowlib_pids; do
    flowlib_wait "$flowlib_pid"
    flowlib_status=$?
    if [ "$flowlib_status" -ne 0 ]; then
        flowlib_failed=$((flowlib_failed + 1))
        [ "$flowlib_first" -ne 0 ] || flowlib_first=$flowlib_status
    fi
done
# told to stop (and to stop the copies): say so, however few copies had started
[ "$flowlib_stop" = 0 ] || exit 143
if [ "$flowlib_failed" -ne 0 ]; then
    [ @{report} = 0 ] || echo "flowlib SingleNodeLauncher: $flowlib_failed of @{total} copies failed (first exit status $flowlib_first)" >&2
    if [ @{fail_on_any} = 1 ] || [ "$flowlib_failed" -eq @{total} ]; then
        exit "$flowlib_first"
    fi
fi
exit 0
)
