#!/bin/bash
# A flowlib block for PBS Pro (rendered from flowlib/providers/templates/pbspro.sh).
#PBS -N $job_name
#PBS -o $stdout_path
#PBS -e $stderr_path
#PBS -S /bin/bash
#PBS -V
$directives
$scheduler_options

# worker_init, from the provider's configuration
$worker_init
flowlib_status=$$?
if [ "$$flowlib_status" -ne 0 ]; then
    echo "flowlib: worker_init failed with exit code $$flowlib_status; the workers are not started" >&2
    exit "$$flowlib_status"
fi

# the workers, wrapped by the launcher
$launch_command
