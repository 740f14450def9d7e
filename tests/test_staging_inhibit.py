"""Parsl's `_parsl_staging_inhibit=True`: a staging provider's own transfer app is not staged again."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

import flowlib
from flowlib import File, python_app
from flowlib.config import Config
from flowlib.data_provider.staging import Staging
from flowlib.executors.threads import ThreadPoolExecutor

pytestmark = pytest.mark.timeout(60)


@python_app
def fetch(url, outputs=(), _parsl_staging_inhibit=True):
    with open(outputs[0].filepath, "w") as f:
        f.write(f"fetched {url}")
    return _parsl_staging_inhibit


class FetchStaging(Staging):
    """Stages ``demo://`` inputs in with a separate app of its own, as Parsl's providers do."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.stage_ins: list[str] = []

    def can_stage_in(self, file: File) -> bool:
        return file.scheme == "demo"

    def stage_in(self, dm: Any, executor: str, file: File, parent_fut: Future[Any] | None) -> Any:
        self.stage_ins.append(file.url)
        local = File(f"{self.directory}/{file.filename}")
        file.local_path = local.filepath
        # The transfer app's own output is a plain local File: with the keyword it is not staged.
        return fetch(file.url, outputs=[local], _parsl_staging_inhibit=True).outputs[0]


@python_app
def read(inputs=()):
    with open(inputs[0].filepath) as f:
        return f.read()


def test_a_providers_transfer_app_is_not_staged_again(tmp_path):
    plugin = FetchStaging(str(tmp_path))
    executor = ThreadPoolExecutor(max_threads=2, storage_access=[plugin])
    with flowlib.load(Config(executors=[executor], run_dir=str(tmp_path / "runinfo"))):
        assert read(inputs=[File("demo://host/data.txt")]).result(timeout=20) == "fetched demo://host/data.txt"
        with pytest.raises(ValueError, match="can stage out"):  # without the keyword its output is staged
            fetch("x", outputs=[File(str(tmp_path / "direct.txt"))])
    assert plugin.stage_ins == ["demo://host/data.txt"]  # once, for the user's app only
