# Waiting for background copies; a TERM, INT or HUP sent to this shell is passed on to them
# as TERM (background commands ignore INT), and the copies are still waited for. A signal
# that comes while copies are being started ends the starting: start a copy only while
# flowlib_starting succeeds, and record it at once with flowlib_started.
flowlib_pids=
flowlib_signalled=0
flowlib_stop=0
# $! as well: the copy started last may not be recorded yet
trap 'flowlib_signalled=1; flowlib_stop=1; kill -TERM $flowlib_pids $! 2>/dev/null' TERM INT HUP
flowlib_starting() {
    [ "$flowlib_stop" = 0 ]
}
flowlib_started() {
    flowlib_pids="$flowlib_pids $1"
    # a signal between flowlib_starting and the start of this copy did not reach it
    [ "$flowlib_stop" = 0 ] || kill -TERM "$1" 2>/dev/null
}
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
