"""Where the interchange listens and which addresses pools are told, per kind of provider."""

from __future__ import annotations

import pytest

from flowlib.channels.ssh import SSHChannel
from flowlib.executors.high_throughput.executor import HighThroughputExecutor
from flowlib.providers import LocalProvider, SlurmProvider

pytestmark = pytest.mark.timeout(30)


def test_local_provider_listens_on_loopback_only():
    ex = HighThroughputExecutor(provider=LocalProvider())
    assert ex.options.bind_address(ex.provider) == "127.0.0.1"
    assert ex.options.worker_addresses(ex.provider) == "127.0.0.1"


def test_cluster_provider_listens_everywhere_and_offers_every_address():
    ex = HighThroughputExecutor(provider=SlurmProvider(partition="debug"))
    assert ex.options.bind_address(ex.provider) == "*"
    assert "127.0.0.1" in ex.options.worker_addresses(ex.provider).split(",")


def test_pinned_address_is_used_for_both():
    ex = HighThroughputExecutor(provider=SlurmProvider(partition="debug"), address="10.1.2.3")
    assert ex.options.bind_address(ex.provider) == "10.1.2.3"
    assert ex.options.worker_addresses(ex.provider) == "10.1.2.3"


def test_behind_ssh_the_interchange_stays_on_loopback_even_with_an_address():
    channel = SSHChannel("login.example.org", username="someone")  # no I/O until first use
    for address in (None, "login-internal"):
        ex = HighThroughputExecutor(provider=SlurmProvider(partition="debug", channel=channel), address=address)
        assert ex.options.bind_address(ex.provider) == "127.0.0.1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cores_per_worker": 0}, "cores_per_worker"),
        ({"heartbeat_period": 10, "heartbeat_threshold": 5}, "heartbeat_threshold"),
        ({"cpu_affinity": "sideways"}, "cpu_affinity"),
        ({"prefetch_capacity": -1}, "prefetch_capacity"),
    ],
)
def test_bad_values_name_the_option(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HighThroughputExecutor(provider=LocalProvider(), **kwargs)


@pytest.mark.parametrize(
    "name, value", [("max_workers_per_node", "4"), ("unix_sockets", "yes"), ("shared_memory", 1), ("encrypted", None)]
)
def test_wrong_type_names_the_option(name, value):
    with pytest.raises(TypeError, match=f"HighThroughputExecutor argument '{name}'"):
        HighThroughputExecutor(provider=LocalProvider(), **{name: value})


def test_options_changed_before_start_are_validated_again():
    ex = HighThroughputExecutor(provider=LocalProvider())
    ex.heartbeat_period = 5
    ex.max_workers_per_node = 3
    assert ex._validated_options().max_workers_per_node == 3
    ex.poll_period = 0
    with pytest.raises(ValueError, match="poll_period"):
        ex._validated_options()
