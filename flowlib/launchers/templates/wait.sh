# Waiting for background copies; a TERM, INT or HUP sent to this shell is passed on to them
# as TERM (background commands ignore INT), and the copies are still waited for.
flowlib_pids=
flowlib_signalled=0
trap 'flowlib_signalled=1; kill -TERM $flowlib_pids 2>/dev/null' TERM INT HUP
# flowlib_wait PID: PID's exit status. A trapped signal cuts a wait short (status 128+N),
# so wait again: bash gives the status of a copy it has already reaped, or waits for it.
flowlib_wait() {
    while :; do
        flowlib_signalled=0
        wait "$1"
        flowlib_status=$?
        [ "$flowlib_signalled" = 1 ] || return "$flowlib_status"
    done
}
