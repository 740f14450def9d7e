"""Wrong argument types are both TypeError and typeguard's TypeCheckError (what Parsl raises)."""

from __future__ import annotations

import pytest
import typeguard

from flowlib.config import Config
from flowlib.executors.threads import ThreadPoolExecutor
from flowlib.providers import LocalProvider, SlurmProvider
from flowlib.validation import ArgumentTypeError


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: Config(retries="3"), "retries"),
        (lambda: ThreadPoolExecutor(max_threads="2"), "max_threads"),
        (lambda: LocalProvider(worker_init=3), "worker_init"),
        (lambda: SlurmProvider(nodes_per_block="2"), "nodes_per_block"),
    ],
)
@pytest.mark.parametrize("caught", [TypeError, typeguard.TypeCheckError])
def test_wrong_type_is_caught_as_either_class(build, name, caught):
    with pytest.raises(caught, match=repr(name)) as info:
        build()
    assert isinstance(info.value, ArgumentTypeError)
    assert name in str(info.value)
