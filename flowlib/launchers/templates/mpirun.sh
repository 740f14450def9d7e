(
@{trace}
mpirun -np @{total} @{overrides} @{bash_location} -c @{command}
)
