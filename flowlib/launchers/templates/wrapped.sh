(
@{trace}
@{prepend} /bin/sh -c @{command}
)
