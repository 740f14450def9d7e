#!/bin/bash
# A flowlib block for Slurm (rendered from flowlib/providers/templates/slurm.sh).
#SBATCH --job-name=$job_name
#SBATCH --output=$stdout_path
#SBATCH --error=$stderr_path
#SBATCH --nodes=$nodes_per_block
#SBATCH --ntasks-per-node=$tasks_per_node
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
