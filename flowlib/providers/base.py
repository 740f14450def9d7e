"""The execution-provider contract: get blocks of nodes, report on them, release them.

An executor that scales (the high-throughput executor) owns one provider. Its
scaling strategy asks the provider for blocks; each block is one job on the
provider's scheduler, running ``launcher(command, tasks_per_node, nodes_per_block, script_dir)``.

Constructors validate and store their arguments and do no I/O: nothing contacts
a scheduler, a cloud or a cluster until ``submit``/``status``/``cancel``.
"""

from __future__ import annotations

import abc
from typing import Any

from flowlib.jobs.states import JobState, JobStatus
from flowlib.utils import RepresentationMixin


class ExecutionProvider(RepresentationMixin, metaclass=abc.ABCMeta):
    """Base class of all providers.

    Attributes every provider has: ``label``, ``init_blocks``, ``min_blocks``,
    ``max_blocks``, ``nodes_per_block``, ``parallelism`` (0..1: the share of
    outstanding tasks to provision for), ``launcher``, ``worker_init`` (shell run
    before the workers start), ``cmd_timeout``, ``script_dir`` (set by the executor
    before the first submit: where submit scripts and job output go), and
    ``cores_per_node`` / ``mem_per_node`` when the provider knows them (else None).
    """

    label: str = "provider"
    init_blocks: int = 1
    min_blocks: int = 0
    max_blocks: int = 1
    nodes_per_block: int = 1
    parallelism: float = 1.0
    worker_init: str = ""
    cmd_timeout: float = 30.0
    script_dir: str | None = None
    cores_per_node: int | None = None
    mem_per_node: float | None = None
    launcher: Any = None
    workers_on_this_machine: bool = False
    """True when blocks run on the submitting machine itself (executors may then keep to loopback)."""
    submitted_state: JobState = JobState.PENDING
    """A job's state right after a successful submit (RUNNING where submitting starts the process)."""

    @abc.abstractmethod
    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Start one block running ``command``; return the job id.

        Raises :class:`~flowlib.providers.errors.SubmitException` naming the
        scheduler's answer when the job cannot be submitted.
        """

    @abc.abstractmethod
    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """The status of each job, in the order given."""

    @abc.abstractmethod
    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Cancel the jobs; for each, True if the scheduler accepted the cancel."""

    @property
    def status_polling_interval(self) -> float:
        """Seconds between two status polls of this provider's jobs."""
        return 5.0
