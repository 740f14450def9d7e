#!/bin/bash
# A flowlib block for IBM Spectrum LSF (rendered from flowlib/providers/templates/lsf_job.sh).
#BSUB -J $job_name
#BSUB -o $stdout_path
#BSUB -e $stderr_path
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
