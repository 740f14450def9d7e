"""The high-throughput executor's options, validated in one place, and the pool command.

The executor keeps Parsl's keywords as attributes (they may be changed after
construction and before ``start()``); :meth:`HTEXOptions.build` checks them, at
construction and again at start.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Sequence
from typing import Any

from flowlib.validation import validate_arguments

_AFFINITY = re.compile(r"^(none|block|alternating|block-reverse|list:[0-9,]+(:[0-9,]+)*)$")

DEFAULT_LAUNCH_CMD = "{python} -m flowlib.executors.high_throughput.worker_pool {options}"
"""The default ``launch_cmd``: fields ``{python}``, ``{options}`` and ``{block_id}`` are filled per block."""


@dataclasses.dataclass(frozen=True)
class HTEXOptions:
    """Validated options of one HighThroughputExecutor."""

    label: str
    launch_cmd: str | None
    address: str | None
    loopback_address: str
    worker_ports: tuple[int, int] | None
    worker_port_range: tuple[int, int]
    interchange_port_range: tuple[int, int]
    worker_debug: bool
    cores_per_worker: float
    mem_per_worker: float | None
    max_workers_per_node: float
    cpu_affinity: str
    available_accelerators: tuple[str, ...]
    prefetch_capacity: int
    heartbeat_threshold: float
    heartbeat_period: float
    drain_period: float | None
    poll_period: int
    address_probe_timeout: float | None
    worker_logdir_root: str | None
    encrypted: bool
    working_dir: str | None
    unix_sockets: bool
    shared_memory: bool

    FIELDS = (
        "label", "launch_cmd", "address", "loopback_address", "worker_ports", "worker_port_range",
        "interchange_port_range", "worker_debug", "cores_per_worker", "mem_per_worker", "max_workers_per_node",
        "cpu_affinity", "available_accelerators", "prefetch_capacity", "heartbeat_threshold", "heartbeat_period",
        "drain_period", "poll_period", "address_probe_timeout", "worker_logdir_root", "encrypted", "working_dir",
        "unix_sockets", "shared_memory",
    )  # fmt: skip

    @classmethod
    def build(cls, **values: Any) -> HTEXOptions:
        """Check every option; TypeError or ValueError naming the first bad one."""
        number = int | float
        validate_arguments(
            "HighThroughputExecutor",
            {
                "label": (values["label"], str),
                "launch_cmd": (values["launch_cmd"], str | None),
                "address": (values["address"], str | None),
                "loopback_address": (values["loopback_address"], str),
                "worker_ports": (values["worker_ports"], tuple[int, int] | None),
                "worker_port_range": (values["worker_port_range"], tuple[int, int]),
                "interchange_port_range": (values["interchange_port_range"], tuple[int, int]),
                "worker_debug": (values["worker_debug"], bool),
                "cores_per_worker": (values["cores_per_worker"], number),
                "mem_per_worker": (values["mem_per_worker"], number | None),
                "max_workers_per_node": (values["max_workers_per_node"], number | None),
                "cpu_affinity": (values["cpu_affinity"], str),
                "available_accelerators": (values["available_accelerators"], int | Sequence[str]),
                "prefetch_capacity": (values["prefetch_capacity"], int),
                "heartbeat_threshold": (values["heartbeat_threshold"], number),
                "heartbeat_period": (values["heartbeat_period"], number),
                "drain_period": (values["drain_period"], number | None),
                "poll_period": (values["poll_period"], int),
                "address_probe_timeout": (values["address_probe_timeout"], number | None),
                "worker_logdir_root": (values["worker_logdir_root"], str | None),
                "encrypted": (values["encrypted"], bool),
                "working_dir": (values["working_dir"], str | None),
                "unix_sockets": (values["unix_sockets"], bool),
                "shared_memory": (values["shared_memory"], bool),
            },
        )
        accelerators = values["available_accelerators"]
        if isinstance(accelerators, int):
            accelerators = [str(i) for i in range(accelerators)]
        max_workers = values["max_workers_per_node"]
        checks = [
            (values["cores_per_worker"] > 0, "cores_per_worker must be > 0"),
            (values["mem_per_worker"] is None or values["mem_per_worker"] > 0, "mem_per_worker must be > 0"),
            (max_workers is None or max_workers >= 1, "max_workers_per_node must be >= 1"),
            (values["prefetch_capacity"] >= 0, "prefetch_capacity must be >= 0"),
            (values["heartbeat_period"] > 0, "heartbeat_period must be > 0"),
            (
                values["heartbeat_threshold"] > values["heartbeat_period"],
                "heartbeat_threshold must be larger than heartbeat_period",
            ),
            (values["poll_period"] > 0, "poll_period must be > 0 (milliseconds)"),
            (bool(_AFFINITY.match(values["cpu_affinity"])), "cpu_affinity must be none, block, alternating, "
             "block-reverse or list:<cpus>:<cpus>..."),
            (values["drain_period"] is None or values["drain_period"] > 0, "drain_period must be > 0"),
            (_valid_range(values["worker_port_range"]), "worker_port_range must be (low, high) ports"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(f"HighThroughputExecutor: {message}; got {_shown(message, values)}")
        values = dict(values)
        values["available_accelerators"] = tuple(accelerators)
        values["max_workers_per_node"] = math.inf if max_workers is None else float(max_workers)
        return cls(**values)

    def replace(self, **changes: Any) -> HTEXOptions:
        """A copy with some options changed, validated again."""
        values = {name: getattr(self, name) for name in self.FIELDS}
        values.update(changes)
        return self.build(**values)

    # ------------------------------------------------------------- addresses

    def bind_address(self, provider: Any) -> str:
        """Where the interchange listens for worker pools."""
        if provider_uses_ssh(provider):
            return self.loopback_address  # pools arrive through the SSH tunnel; ``address`` is the far end's
        if self.address:
            return self.address
        if provider_is_local(provider):
            return self.loopback_address  # behind an SSH tunnel, pools arrive on loopback too
        return "*"  # every interface, IPv4 and IPv6

    def worker_addresses(self, provider: Any) -> str:
        """The interchange addresses a worker pool tries, comma-separated."""
        if self.address:
            return self.address
        if provider_is_local(provider):
            return self.loopback_address
        from flowlib.addresses import get_all_addresses, ordered

        return ",".join(ordered(get_all_addresses()))

    def expected_workers_per_node(self, provider: Any) -> float:
        """Workers a node will run, estimated before any pool has registered."""
        cores = getattr(provider, "cores_per_node", None)
        estimate = self.max_workers_per_node
        if cores:
            estimate = min(estimate, math.floor(cores / self.cores_per_worker))
        mem = getattr(provider, "mem_per_node", None)
        if mem and self.mem_per_worker:  # the pool caps its workers by memory too (pool_options.py)
            estimate = min(estimate, math.floor(mem / self.mem_per_worker))
        if self.available_accelerators:
            estimate = min(estimate, len(self.available_accelerators))
        return float(estimate) if math.isfinite(estimate) and estimate >= 1 else 1.0

    # --------------------------------------------------------------- command

    def pool_command(
        self,
        *,
        block_id: str,
        worker_port: int,
        addresses: str,
        cert_dir: str | None,
        logdir: str,
        python: str,
        unix_socket: str | None = None,
        result_dir: str | None = None,
        log_format: str | None = None,
    ) -> str:
        """The command line that starts one worker pool of block ``block_id``."""
        max_workers = "inf" if math.isinf(self.max_workers_per_node) else str(int(self.max_workers_per_node))
        args = [
            "--addresses", addresses,
            "--port", str(worker_port),
            "--block-id", block_id,
            "--max-workers-per-node", max_workers,
            "--cores-per-worker", repr(self.cores_per_worker),
            "--cpu-affinity", self.cpu_affinity,
            "--prefetch-capacity", str(self.prefetch_capacity),
            "--heartbeat-period", repr(float(self.heartbeat_period)),
            "--heartbeat-threshold", repr(float(self.heartbeat_threshold)),
            "--poll-period", str(self.poll_period),
            "--logdir", logdir,
        ]  # fmt: skip
        if self.address_probe_timeout is not None:
            args += ["--address-probe-timeout", repr(float(self.address_probe_timeout))]
        if cert_dir:
            args += ["--cert-dir", cert_dir]
        if unix_socket:
            args += ["--unix-socket", unix_socket]
            if result_dir:
                args += ["--result-dir", result_dir]
        if self.mem_per_worker is not None:
            args += ["--mem-per-worker", repr(float(self.mem_per_worker))]
        if self.available_accelerators:
            args += ["--available-accelerators", ",".join(self.available_accelerators)]
        if self.drain_period is not None:
            args += ["--drain-period", repr(float(self.drain_period))]
        if self.working_dir:
            args += ["--working-dir", self.working_dir]
        if self.worker_debug:
            args.append("--debug")
        if log_format:
            args += ["--log-format", log_format]
        options = " ".join(shlex.quote(a) for a in args)
        template = self.launch_cmd or DEFAULT_LAUNCH_CMD
        return template.format(python=python, options=options, block_id=block_id)


def provider_is_local(provider: Any) -> bool:
    """True when the provider starts workers on this machine, over a local channel."""
    if provider is None:
        return True
    if not getattr(provider, "workers_on_this_machine", False):
        return False
    from flowlib.channels.local import LocalChannel

    channel = getattr(provider, "channel", None)
    return channel is None or isinstance(channel, LocalChannel)


def provider_uses_ssh(provider: Any) -> bool:
    """True when the provider reaches its scheduler through an SSH channel (pools come through a tunnel)."""
    channel = getattr(provider, "channel", None)
    return channel is not None and type(channel).__module__.startswith("flowlib.channels.ssh")


def _valid_range(pair: tuple[int, int]) -> bool:
    low, high = pair
    return 0 < low < high < 65536


def _shown(message: str, values: dict[str, Any]) -> str:
    name = message.split()[0]
    return repr(values.get(name))
