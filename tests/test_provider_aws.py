"""AWSProvider against moto's in-process EC2 (``mock_aws``).

No AWS account is reachable here. moto implements the EC2 API that boto3 calls
(VPCs, subnets, security groups, run/describe/terminate instances), so the
provider's real boto3 requests are made and answered. Instances do not boot in
moto, so the user data flowlib generated is fetched back from the API and run
with bash here, to show that it starts the workers.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from flowlib.errors import ConfigurationError, OptionalModuleMissing
from flowlib.jobs.states import JobState
from flowlib.launchers import SrunLauncher
from flowlib.launchers.base import Launcher
from flowlib.providers.aws import AWSProvider, cloud_startup_script
from flowlib.providers.errors import ExecutionProviderException, SubmitException

pytestmark = pytest.mark.timeout(60)


def _need(module: str) -> Any:
    """The optional package these tests need: skipped where it is missing, but in CI
    (``CI`` set) a missing package fails, so that CI cannot go green by skipping."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


moto = _need("moto")
boto3 = _need("boto3")


class PlainLauncher(Launcher):
    """Runs the command once (this file tests the provider, not the launchers)."""

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto.mock_aws():
        yield boto3.client("ec2", region_name="us-east-2")


def _provider(tmp_path: Any, **kwargs: Any) -> AWSProvider:
    kwargs.setdefault("state_file", str(tmp_path / "aws-state.json"))
    kwargs.setdefault("launcher", PlainLauncher())
    return AWSProvider("ami-12345678", **kwargs)


def _user_data(ec2: Any, instance_id: str) -> str:
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    return base64.b64decode(value).decode()


def test_submit_builds_network_and_user_data_starts_workers(aws: Any, tmp_path: Any) -> None:
    provider = _provider(
        tmp_path, key_name="my-key", worker_init="export GREETING=hello", linger=True, walltime="00:05:00"
    )
    assert not (tmp_path / "aws-state.json").exists()  # the constructor did nothing
    captured: list[dict[str, Any]] = []
    provider.client.meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **_: captured.append(params)
    )
    marker = tmp_path / "ran"
    job_id = provider.submit(f'echo "$GREETING" > {marker}', tasks_per_node=1, job_name="block-0")
    assert job_id.startswith("i-")

    state = json.loads((tmp_path / "aws-state.json").read_text())
    assert state["instances"] == [job_id]
    vpc = aws.describe_vpcs(VpcIds=[state["vpcID"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert len(state["snIDs"]) == 3  # one per availability zone of us-east-2
    group = aws.describe_security_groups(GroupIds=[state["sgID"]])["SecurityGroups"][0]
    ports = sorted((p["IpProtocol"], p.get("FromPort")) for p in group["IpPermissions"])
    assert ports == [("-1", None), ("tcp", 22)]
    request = captured[0]
    assert request["KeyName"] == "my-key" and request["InstanceType"] == "t2.small"
    assert request["InstanceInitiatedShutdownBehavior"] == "terminate"
    assert request["SubnetId"] in state["snIDs"] and request["SecurityGroupIds"] == [state["sgID"]]

    script = _user_data(aws, job_id)
    assert "timeout --kill-after=30 300 " in script and "shutdown" not in script  # linger=True
    done = subprocess.run(["bash", "-c", script.replace("timeout --kill-after=30 300 ", "")], timeout=20)
    assert done.returncode == 0 and marker.read_text() == "hello\n"

    assert provider.status([job_id])[0].state in (JobState.PENDING, JobState.RUNNING)
    assert provider.cancel([job_id]) == [True]
    assert provider.status([job_id])[0].state is JobState.CANCELLED
    assert json.loads((tmp_path / "aws-state.json").read_text())["instances"] == []


def test_multi_node_spot_block_and_states_set_outside_flowlib(aws: Any, tmp_path: Any) -> None:
    iam = boto3.client("iam").create_instance_profile(InstanceProfileName="workers")["InstanceProfile"]["Arn"]
    provider = _provider(tmp_path, nodes_per_block=2, spot_max_bid=0.25, iam_instance_profile_arn=iam)
    captured: list[dict[str, Any]] = []
    provider.client.meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **_: captured.append(params)
    )
    job_id = provider.submit("true", tasks_per_node=1)
    instances = provider.resources[job_id]["instances"]
    assert len(instances) == 2 and captured[0]["MinCount"] == captured[0]["MaxCount"] == 2
    assert captured[0]["InstanceMarketOptions"] == {
        "MarketType": "spot",
        "SpotOptions": {"MaxPrice": "0.25", "SpotInstanceType": "one-time"},
    }
    assert captured[0]["IamInstanceProfile"] == {"Arn": iam}
    assert "shutdown -h now" in _user_data(aws, instances[0])  # linger=False powers off at the end

    aws.terminate_instances(InstanceIds=[instances[1]])  # behind flowlib's back: one node gone
    assert provider.status([job_id])[0].state in (JobState.PENDING, JobState.RUNNING)
    aws.terminate_instances(InstanceIds=[instances[0]])
    status = provider.status([job_id])[0]
    assert status.state is JobState.CANCELLED and "User initiated" in (status.message or "")
    assert provider.status(["i-0123456789abcdef0"])[0].state is JobState.MISSING


def test_state_file_is_reused_and_teardown_deletes_everything(aws: Any, tmp_path: Any) -> None:
    first = _provider(tmp_path)
    job_id = first.submit("true", 1)
    vpc = json.loads((tmp_path / "aws-state.json").read_text())["vpcID"]
    second = _provider(tmp_path)
    other = second.submit("true", 1)
    assert json.loads((tmp_path / "aws-state.json").read_text())["vpcID"] == vpc
    assert sorted(json.loads((tmp_path / "aws-state.json").read_text())["instances"]) == sorted([job_id, other])
    second.teardown()
    assert not (tmp_path / "aws-state.json").exists()
    assert [v for v in aws.describe_vpcs()["Vpcs"] if v["VpcId"] == vpc] == []
    states = {i["State"]["Name"] for r in aws.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states == {"terminated"}


def test_given_subnet_and_ec2_errors(aws: Any, tmp_path: Any) -> None:
    vpc = aws.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = aws.create_subnet(VpcId=vpc, CidrBlock="10.1.0.0/24")["Subnet"]["SubnetId"]
    provider = _provider(tmp_path, subnet_id=subnet)
    job_id = provider.submit("true", 1)
    assert not (tmp_path / "aws-state.json").exists()  # flowlib created nothing to remember
    assert len(aws.describe_vpcs()["Vpcs"]) == 2  # the default VPC and ours; none created
    assert provider.cancel([job_id]) == [True]

    broken = _provider(tmp_path, subnet_id="subnet-00000000")
    with pytest.raises(SubmitException, match="EC2 refused to start 1 instance"):
        broken.submit("true", 1, job_name="nowhere")


def test_bad_key_file_and_bad_arguments(aws: Any, tmp_path: Any) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('{"AWSAccessKeyId": "x"}')
    with pytest.raises(ExecutionProviderException, match="AWSSecretKey"):
        _provider(tmp_path, key_file=str(keys)).submit("true", 1)
    with pytest.raises(TypeError, match="'image_id'"):
        AWSProvider(42, launcher=PlainLauncher())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'launcher'"):
        AWSProvider("ami-1", launcher="single")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="walltime"):
        AWSProvider("ami-1", walltime="2 hours", launcher=PlainLauncher())
    with pytest.raises(ConfigurationError, match="AWSProvider cannot use launcher SrunLauncher"):
        AWSProvider("ami-1", launcher=SrunLauncher())
    with pytest.raises(ValueError, match="min_blocks <= max_blocks"):
        AWSProvider("ami-1", min_blocks=5, max_blocks=2, launcher=PlainLauncher())
    with pytest.raises(ValueError, match="spot_max_bid"):
        AWSProvider("ami-1", spot_max_bid=-1, launcher=PlainLauncher())


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    real_import = builtins.__import__

    def no_boto3(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "boto3" or name.startswith(("boto3.", "botocore")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    provider = _provider(tmp_path)
    with pytest.raises(OptionalModuleMissing, match=r"boto3.*flowlib\[aws\]"):
        provider.submit("true", 1)


def test_startup_script_runs_worker_init_then_the_command(tmp_path: Any) -> None:
    script = cloud_startup_script("cd /", "pwd > '" + str(tmp_path / "where") + "'; exit 3", None, linger=True)
    assert subprocess.run(["bash", "-c", script], timeout=10).returncode == 3
    assert (tmp_path / "where").read_text() == "/\n"
    failing = cloud_startup_script("false", f"touch {tmp_path / 'started'}", None, linger=True)
    done = subprocess.run(["bash", "-c", failing], timeout=10, capture_output=True, text=True)
    assert done.returncode == 1 and "worker_init failed with exit code 1" in done.stderr
    assert not (tmp_path / "started").exists()
