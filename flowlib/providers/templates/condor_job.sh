#!/bin/bash
# A flowlib block for HTCondor (rendered from flowlib/providers/templates/condor_job.sh).
# job name: $job_name

# worker_init, from the provider's configuration
$worker_init
flowlib_status=$$?
if [ "$$flowlib_status" -ne 0 ]; then
    echo "flowlib: worker_init failed with exit code $$flowlib_status; the workers are not started" >&2
    exit "$$flowlib_status"
fi

# the workers, wrapped by the launcher
$launch_command
