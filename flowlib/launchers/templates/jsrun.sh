(
@{trace}
jsrun -n @{total} -r @{tasks_per_node} @{overrides} /bin/bash -c @{command}
)
