(
@{trace}
srun --nodes=@{nodes_per_block} --ntasks=@{total} --ntasks-per-node=@{tasks_per_node} --label @{overrides} /bin/bash -c @{command}
)
