(
@{trace}
aprun -n @{total} -N @{tasks_per_node} @{overrides} /bin/bash -c @{command}
)
