"""``auto()``: a sensible Config for wherever this process runs; ``detect()``: where that is.

::

    detect()                    auto()
    ---------------------       -------------------------------------------------------------
    $SLURM_JOB_ID and a         HighThroughputExecutor, AllocationProvider over the job's nodes,
    node list        -> slurm   SrunLauncher (one worker pool per node)
    $PBS_JOBID and              HighThroughputExecutor, AllocationProvider over the unique hosts
    $PBS_NODEFILE    -> pbs     of $PBS_NODEFILE, MpiExecLauncher
    otherwise        -> local   HighThroughputExecutor with one worker per usable core, or a
                                ThreadPoolExecutor when only one core is usable

No job is ever submitted: inside an allocation the workers start on the nodes the
scheduler has already given to this job.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping
from typing import Any, Literal

from flowlib.config import Config
from flowlib.errors import ConfigurationError

logger = logging.getLogger(__name__)

__all__ = ["auto", "detect", "usable_cores"]

Environment = Literal["slurm", "pbs", "local"]

SCONTROL_TIMEOUT = 30.0
"""Seconds ``scontrol show hostnames`` may take."""


def _get(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` set to a non-blank value in ``environ``."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _why(environ: Mapping[str, str]) -> tuple[Environment, str]:
    """The environment and the variables that show it."""
    job = _get(environ, "SLURM_JOB_ID", "SLURM_JOBID")
    nodelist = _get(environ, "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    if job and nodelist:
        return "slurm", f"SLURM_JOB_ID={job} and SLURM_JOB_NODELIST={nodelist} are set"
    pbs_job = _get(environ, "PBS_JOBID")
    nodefile = _get(environ, "PBS_NODEFILE")
    if pbs_job and nodefile:
        return "pbs", f"PBS_JOBID={pbs_job} and PBS_NODEFILE={nodefile} are set"
    if job:
        return "local", f"SLURM_JOB_ID={job} is set but no SLURM_JOB_NODELIST, so this is not a usable allocation"
    if pbs_job:
        return "local", f"PBS_JOBID={pbs_job} is set but no PBS_NODEFILE, so this is not a usable allocation"
    return "local", "neither SLURM_JOB_ID nor PBS_JOBID is set"


def detect(environ: Mapping[str, str] | None = None) -> Environment:
    """Where this process runs: ``'slurm'``, ``'pbs'`` or ``'local'``.

    ``'slurm'`` needs ``$SLURM_JOB_ID`` and ``$SLURM_JOB_NODELIST`` (the variables
    ``sbatch`` and ``salloc`` set); ``'pbs'`` needs ``$PBS_JOBID`` and
    ``$PBS_NODEFILE``; anything else is ``'local'``. Reads only ``environ``
    (default ``os.environ``): no file, no command.
    """
    return _why(os.environ if environ is None else environ)[0]


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def slurm_nodes(environ: Mapping[str, str]) -> list[str]:
    """The host names of this Slurm job, from ``scontrol show hostnames $SLURM_JOB_NODELIST``.

    When ``scontrol`` is missing or fails, the nodes are numbered from
    ``$SLURM_JOB_NUM_NODES`` / ``$SLURM_NNODES`` instead (names are only logged).
    Raises ConfigurationError when neither works.
    """
    nodelist = _get(environ, "SLURM_JOB_NODELIST", "SLURM_NODELIST") or ""
    count = _get(environ, "SLURM_JOB_NUM_NODES", "SLURM_NNODES")
    why = ""
    try:
        done = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT,
            env=dict(environ),
            check=False,
        )
        names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode == 0 and names:
            return names
        why = f"exit code {done.returncode}: {(done.stderr or done.stdout).strip()[:300]!r}"
    except (OSError, subprocess.TimeoutExpired) as e:
        why = str(e)
    if count and count.isdigit() and int(count) > 0:
        logger.info("scontrol show hostnames %s failed (%s); using SLURM_NNODES=%s", nodelist, why, count)
        return [f"node{i}" for i in range(int(count))]
    raise ConfigurationError(
        f"flowlib.configs.auto: cannot list the nodes of Slurm job {nodelist!r}: "
        f"scontrol show hostnames failed ({why}) and SLURM_NNODES is not set"
    )


def pbs_nodes(nodefile: str) -> list[str]:
    """The unique host names of ``$PBS_NODEFILE``, first seen first (it lists a host once per slot)."""
    try:
        with open(nodefile, encoding="utf-8") as f:
            hosts = [line.split()[0] for line in f if line.strip()]
    except OSError as e:
        raise ConfigurationError(f"flowlib.configs.auto: cannot read PBS_NODEFILE {nodefile!r}: {e}") from e
    unique = list(dict.fromkeys(hosts))
    if not unique:
        raise ConfigurationError(f"flowlib.configs.auto: PBS_NODEFILE {nodefile!r} lists no host")
    return unique


def _allocation_executor(nodes: list[str], launcher: Any, scheduler: str) -> Any:
    from flowlib.configs._allocation import AllocationProvider
    from flowlib.executors.high_throughput.executor import HighThroughputExecutor

    return HighThroughputExecutor(
        label=f"htex_{scheduler}",
        provider=AllocationProvider(nodes_per_block=len(nodes), launcher=launcher, label=f"{scheduler}_allocation"),
    )


def _local_executor(cores: int) -> Any:
    if cores > 1:
        from flowlib.executors.high_throughput.executor import HighThroughputExecutor
        from flowlib.providers.local import LocalProvider

        return HighThroughputExecutor(
            label="htex_local",
            max_workers_per_node=cores,
            provider=LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1),
        )
    from flowlib.executors.threads import ThreadPoolExecutor

    return ThreadPoolExecutor(label="threads", max_threads=4)


def auto(**overrides: Any) -> Config:
    """A new Config for the environment this process runs in (see :func:`detect`).

    - In a Slurm job: a HighThroughputExecutor whose single block spans the job's
      nodes (``nodes_per_block`` = their number), one worker pool per node started
      with ``srun --overlap`` (so it may share the nodes with the step this script
      runs in); no new job is submitted.
    - In a PBS job: the same over the unique hosts of ``$PBS_NODEFILE``, started
      with ``mpiexec`` (:class:`~flowlib.launchers.MpiExecLauncher`).
    - Otherwise, on this machine: a HighThroughputExecutor with one worker per
      usable core (``os.sched_getaffinity``) when there is more than one, else a
      ThreadPoolExecutor with 4 threads.

    ``overrides`` are Config keywords (``run_dir``, ``retries``, ``strategy``, ...);
    ``executors`` may not be overridden (build a Config yourself for that). What
    was detected, and why, is logged at INFO on ``flowlib.configs``.
    """
    if "executors" in overrides:
        raise TypeError("flowlib.configs.auto() chooses the executors; build a Config yourself to give your own")
    from flowlib.launchers import MpiExecLauncher, SrunLauncher

    environ = dict(os.environ)
    where, why = _why(environ)
    if where == "slurm":
        nodes = slurm_nodes(environ)
        executor = _allocation_executor(nodes, SrunLauncher(overrides="--overlap"), "slurm")
        logger.info("flowlib.configs.auto: Slurm allocation (%s): workers on %d node(s): %s", why, len(nodes), nodes)
    elif where == "pbs":
        nodes = pbs_nodes(environ["PBS_NODEFILE"].strip())
        executor = _allocation_executor(nodes, MpiExecLauncher(), "pbs")
        logger.info("flowlib.configs.auto: PBS allocation (%s): workers on %d node(s): %s", why, len(nodes), nodes)
    else:
        cores = usable_cores()
        executor = _local_executor(cores)
        kind = "a high-throughput executor" if cores > 1 else "a thread pool"
        logger.info("flowlib.configs.auto: local (%s): %d usable core(s), %s", why, cores, kind)
    return Config(executors=[executor], **overrides)
