(
@{trace}
/bin/bash -c @{command}
)
