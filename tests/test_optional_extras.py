"""Optional parts fail at construction, naming the extra, when their package is missing.

"Missing" is simulated the way Python itself sees an absent package: ``sys.modules[name] =
None`` makes ``import name`` raise ImportError and ``importlib.util.find_spec`` find
nothing. Construction must raise :class:`OptionalModuleMissing` whose message says which
``pip install 'flowlib[extra]'`` brings it, before anything runs in a thread.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from flowlib.errors import OptionalModuleMissing
from flowlib.launchers import SimpleLauncher, SingleNodeLauncher

pytestmark = pytest.mark.timeout(60)

VM = {
    "vm_size": "Standard_D2s_v3",
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "version": "latest",
    "admin_username": "flowlib",
    "ssh_public_key": "ssh-ed25519 AAAA flowlib@test",
}


def ssh_channel() -> Any:
    from flowlib.channels.ssh import SSHChannel

    return SSHChannel("host.invalid")


def interactive_channel() -> Any:
    from flowlib.channels.ssh_interactive import SSHInteractiveLoginChannel

    return SSHInteractiveLoginChannel("host.invalid", username="someone")


def kubernetes() -> Any:
    from flowlib.providers import KubernetesProvider

    return KubernetesProvider(image="busybox")


def aws(tmp_path: Any) -> Any:
    from flowlib.providers import AWSProvider

    return AWSProvider("ami-12345678", state_file=str(tmp_path / "state.json"), launcher=SimpleLauncher())


def google() -> Any:
    from flowlib.providers import GoogleCloudProvider

    return GoogleCloudProvider("p", None, "us-central1-a", "debian-cloud", "debian-12", launcher=SimpleLauncher())


def azure() -> Any:
    from flowlib.providers import AzureProvider

    return AzureProvider(VM, launcher=SimpleLauncher(), credential=object(), subscription_id="s")


def psij() -> Any:
    from flowlib.providers import PSIJProvider

    return PSIJProvider(launcher=SingleNodeLauncher())


def dask() -> Any:
    from flowlib.executors.dask import DaskExecutor

    return DaskExecutor()


def globus_compute() -> Any:
    from unittest import mock

    from flowlib.executors.globus_compute import GlobusComputeExecutor

    try:
        from globus_compute_sdk import Executor
    except ImportError:  # the missing case: construction must fail before it looks at the argument
        return GlobusComputeExecutor(executor=object())
    return GlobusComputeExecutor(executor=mock.Mock(spec=Executor))


def globus_staging() -> Any:
    from flowlib.data_provider.globus import GlobusStaging

    return GlobusStaging("00000000-0000-0000-0000-000000000000")


def monitoring() -> Any:
    from flowlib.monitoring import MonitoringHub

    return MonitoringHub()


CASES: list[tuple[str, Callable[..., Any], list[str], str]] = [
    ("SSHChannel", ssh_channel, ["paramiko"], "ssh"),
    ("SSHInteractiveLoginChannel", interactive_channel, ["paramiko"], "ssh"),
    ("KubernetesProvider", kubernetes, ["kubernetes"], "kubernetes"),
    ("AWSProvider", aws, ["boto3"], "aws"),
    ("GoogleCloudProvider", google, ["googleapiclient"], "google"),
    ("AzureProvider", azure, ["azure.mgmt.compute", "azure.mgmt.network"], "azure"),
    ("PSIJProvider", psij, ["psij"], "psij"),
    ("DaskExecutor", dask, ["distributed"], "dask"),
    ("GlobusComputeExecutor", globus_compute, ["globus_compute_sdk"], "globus-compute"),
    ("GlobusStaging", globus_staging, ["globus_sdk"], "globus"),
    ("MonitoringHub", monitoring, ["sqlalchemy"], "monitoring"),
]


def build(make: Callable[..., Any], tmp_path: Any) -> Any:
    return make(tmp_path) if make is aws else make()


@pytest.mark.parametrize(("owner", "make", "modules", "extra"), CASES, ids=[c[0] for c in CASES])
def test_a_missing_package_fails_at_construction_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, owner: str, make: Callable[..., Any], modules: list[str], extra: str
) -> None:
    build(make, tmp_path)  # with the package installed, construction works (and needs no network)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(OptionalModuleMissing) as info:
        build(make, tmp_path)
    assert f"pip install 'flowlib[{extra}]'" in str(info.value)
    if owner.endswith(("Provider", "Channel")):
        assert owner in str(info.value)


def test_a_google_client_given_by_the_caller_needs_no_google_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib.providers import GoogleCloudProvider

    monkeypatch.setitem(sys.modules, "googleapiclient", None)
    provider = GoogleCloudProvider(
        "p", None, "us-central1-a", "debian-cloud", "debian-12", launcher=SimpleLauncher(), client=object()
    )
    assert provider.client is not None


def test_the_check_does_not_import_the_package() -> None:
    # Constructing a channel or provider finds its package without importing it: that stays lazy.
    code = (
        "import sys\n"
        "from flowlib.channels.ssh import SSHChannel\n"
        "from flowlib.providers import KubernetesProvider, AWSProvider\n"
        "SSHChannel('host.invalid'); KubernetesProvider(image='busybox')\n"
        "print(','.join(m for m in ('paramiko', 'kubernetes', 'boto3') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "", f"imported at construction: {out.stdout.strip()}"


def test_missing_modules_handles_dotted_names_and_absent_parents(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowlib.extras import missing_modules, require

    assert missing_modules(["json", "os.path"]) == []
    assert missing_modules(["no_such_module_xyz", "no_such_parent_xyz.child"]) == [
        "no_such_module_xyz",
        "no_such_parent_xyz.child",
    ]
    with pytest.raises(OptionalModuleMissing, match=r"Thing needs no_such_module_xyz .*pip install 'flowlib\[x\]'"):
        require("Thing", "x", ["json", "no_such_module_xyz"], ["no-such-dist"])
