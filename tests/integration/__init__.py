"""End-to-end tests of the high-throughput executor on the real Slurm, Grid Engine and sshd.

The services are started by ``tests/services/up.sh`` (root). Each test skips when
its service is not up, unless ``CI=true``: then it fails, so that a broken service
recipe cannot turn into silent skips.
"""
