"""The protocol's resource additions: optional node figures in REGISTER, RESOURCES messages, REGISTERED options."""

from __future__ import annotations

import pytest

from flowlib.executors.high_throughput import protocol as p
from flowlib.executors.high_throughput.pool_register import registered_options


def _registration(**extra):
    fields = dict(
        protocol_version=p.PROTOCOL_VERSION, flowlib_version="0", python_version="3", hostname="h", block_id="0",
        pool_id="p", worker_count=2, prefetch_capacity=0, cores=2.0, memory_mb=100.0, accelerators=[], pid=10,
    )  # fmt: skip
    fields.update(extra)
    return p.Registration(**fields)


def test_node_figures_travel_and_are_optional():
    reg = p.Registration.decode(_registration(cpu_count=8, total_memory=1 << 34).encode())
    assert (reg.cpu_count, reg.total_memory) == (8, 1 << 34)
    old = _registration().encode()  # a pool that does not send them
    frames = p.encode_json(
        p.Kind.REGISTER, {k: v for k, v in p.body_json(old).items() if k not in ("cpu_count", "total_memory")}
    )
    assert p.Registration.decode(frames).cpu_count is None
    with pytest.raises(p.BadRegistration, match="cpu_count"):
        p.Registration.decode(_registration(cpu_count=-1).encode())


def test_resources_message_round_trip_and_malformed():
    samples = [{"task_id": 1, "timestamp": 2.0, "cpu_percent": 50.0}]
    assert p.decode_resources(p.encode_resources(samples)) == samples
    for body in ({"samples": "x"}, {"samples": [1]}, {}):
        with pytest.raises(p.ProtocolError, match="RESOURCES"):
            p.decode_resources(p.encode_json(p.Kind.RESOURCES, body))


def test_registered_options_ignore_what_they_do_not_know():
    assert (
        registered_options([p.pack_json({"heartbeat_period": 1, "resource_interval": 0.5})])["resource_interval"] == 0.5
    )
    assert registered_options([]) == {}
    assert registered_options([b"not json"]) == {}
