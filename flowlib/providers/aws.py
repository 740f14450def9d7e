"""AWSProvider: each block is ``nodes_per_block`` EC2 instances whose user data starts the workers.

::

    flowlib (this process)                      EC2 API (boto3)                 instances
    AWSProvider -- run_instances(UserData=script) ---------------------------> boot, run script:
                -- describe_instances(instance-id filter) -> state, reason     worker_init; launcher(command);
                -- terminate_instances (cancel)                                 shut down (unless linger)

Without ``subnet_id``, the first submit reuses the network recorded in ``state_file``
or creates one: a VPC (10.0.0.0/16) with an internet gateway, a route to it, one
public subnet per availability zone and a security group open to the VPC (and to
SSH when ``key_name`` is given). Its ids, and the instances started, are written to
``state_file`` so that a later run reuses them and :meth:`AWSProvider.teardown`
deletes them. boto3 (the ``[aws]`` extra) is imported on first use; the constructor
does no I/O.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from flowlib.errors import OptionalModuleMissing
from flowlib.extras import require
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers.base import Launcher, call_launcher
from flowlib.providers.base import ExecutionProvider
from flowlib.providers.cluster_checks import LAUNCHER_NEEDS, check_launcher, validate_common
from flowlib.providers.errors import ExecutionProviderException, SchedulerCommandError, SubmitException
from flowlib.providers.walltime import Walltime, parse_walltime
from flowlib.validation import validate_arguments

logger = logging.getLogger(__name__)

# validate_common checks the keywords shared with the scheduler providers; these are not ours.
_NOT_A_SCHEDULER = {**dict.fromkeys(("channel", "walltime", "launcher", "move_files")), "scheduler_options": ""}

__all__ = ["AWSProvider", "INSTANCE_STATES", "cloud_startup_script"]

INSTANCE_STATES: dict[str, JobState] = {
    # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-instance-lifecycle.html
    "pending": JobState.PENDING,  # booting; not yet running
    "running": JobState.RUNNING,  # running; the user data (our script) runs at first boot
    "shutting-down": JobState.COMPLETED,  # preparing to be terminated
    "terminated": JobState.COMPLETED,  # deleted; stays visible for about an hour
    "stopping": JobState.CANCELLED,  # being stopped from outside (our script terminates instead)
    "stopped": JobState.CANCELLED,  # stopped; the workers are gone, the instance and its disk remain
}
"""EC2 instance state -> JobState, from the EC2 instance-lifecycle documentation.

For ended instances the StateReason code refines the state: ``Client.InstanceInitiatedShutdown``
(our script ended and shut the instance down) is COMPLETED, ``Server.*`` codes (capacity,
internal error, spot reclaim) are FAILED, other ``Client.*`` codes (terminated or stopped
through the API or console) are CANCELLED.
"""

_VPC_CIDR = "10.0.0.0/16"


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise OptionalModuleMissing(["boto3"], f"AWSProvider needs boto3: pip install 'flowlib[aws]' ({exc})") from exc
    return boto3


def cloud_startup_script(worker_init: str, launched: str, walltime: Walltime | None, linger: bool) -> str:
    """The boot script of a cloud instance, shared by the cloud providers.

    It runs ``worker_init``; if its last command fails, the workers are not started (the
    reason goes to stderr); else it runs ``launched`` (limited to ``walltime``). Then,
    unless ``linger``, it powers the instance off, and exits with the first failure's code.
    """
    run = f"bash -c {shlex.quote(launched)}"
    if walltime is not None:
        run = f"timeout --kill-after=30 {walltime.seconds} {run}"
    lines = [
        "#!/bin/bash",
        "# a flowlib block: the boot script of this instance, written by the provider",
        worker_init,
        "flowlib_status=$?",
        'if [ "$flowlib_status" -ne 0 ]; then',
        '    echo "flowlib: worker_init failed with exit code $flowlib_status; the workers are not started" >&2',
        "else",
        f"    {run}",
        "    flowlib_status=$?",
        "fi",
    ]
    if not linger:
        lines.append("shutdown -h now || poweroff")
    lines.append('exit "$flowlib_status"')
    return "\n".join(lines) + "\n"


def _default_launcher() -> Launcher:
    from flowlib.launchers import SingleNodeLauncher

    launcher: Launcher = SingleNodeLauncher()
    return launcher


class AWSProvider(ExecutionProvider):
    """Blocks as EC2 instances (keywords as Parsl's AWSProvider, plus ``subnet_id``,
    ``security_group_ids`` and ``cmd_timeout``).

    Credentials come from ``key_file`` (JSON with ``AWSAccessKeyId`` and ``AWSSecretKey``),
    else ``profile`` (``~/.aws/config``), else boto3's default chain (environment, instance role).
    ``spot_max_bid`` > 0 asks for spot instances at most that price (USD per hour).
    """

    def __init__(
        self,
        image_id: str,
        key_name: str | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 10,
        nodes_per_block: int = 1,
        parallelism: float = 1,
        worker_init: str = "",
        instance_type: str = "t2.small",
        region: str = "us-east-2",
        spot_max_bid: float = 0,
        key_file: str | None = None,
        profile: str | None = None,
        iam_instance_profile_arn: str = "",
        state_file: str | None = None,
        walltime: str = "01:00:00",
        linger: bool = False,
        launcher: Launcher | None = None,
        subnet_id: str | None = None,
        security_group_ids: Sequence[str] | None = None,
        cmd_timeout: float = 30.0,
    ) -> None:
        require("AWSProvider", "aws", ["boto3"], ["boto3"])
        validate_common("AWSProvider", {"label": "", **_NOT_A_SCHEDULER, **locals()})
        validate_arguments(
            "AWSProvider",
            {
                "image_id": (image_id, str),
                "key_name": (key_name, str | None),
                "instance_type": (instance_type, str),
                "region": (region, str),
                "spot_max_bid": (spot_max_bid, float),
                "key_file": (key_file, str | None),
                "profile": (profile, str | None),
                "iam_instance_profile_arn": (iam_instance_profile_arn, str),
                "state_file": (state_file, str | None),
                "linger": (linger, bool),
                "subnet_id": (subnet_id, str | None),
                "security_group_ids": (security_group_ids, Sequence[str] | None),
            },
        )
        self._walltime = parse_walltime(walltime, "AWSProvider")
        if not image_id:
            raise ValueError("AWSProvider argument 'image_id' must name an AMI, got ''")
        if spot_max_bid < 0:
            raise ValueError(f"AWSProvider argument 'spot_max_bid' must be >= 0, got {spot_max_bid!r}")
        self.image_id = image_id
        self.key_name = key_name
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.nodes_per_block = nodes_per_block
        self.parallelism = parallelism
        self.worker_init = worker_init
        self.instance_type = instance_type
        self.region = region
        self.spot_max_bid = spot_max_bid
        self.key_file = key_file
        self.profile = profile
        self.iam_instance_profile_arn = iam_instance_profile_arn
        self.state_file = state_file if state_file is not None else "awsproviderstate.json"
        self.walltime = walltime
        self.linger = linger
        self.launcher = launcher if launcher is not None else _default_launcher()
        check_launcher("AWSProvider", self.launcher, 1, LAUNCHER_NEEDS, "EC2 instances")
        self.subnet_id = subnet_id
        self.security_group_ids = list(security_group_ids) if security_group_ids is not None else None
        self.cmd_timeout = cmd_timeout
        self.label = "ec2"
        self.resources: dict[str, dict[str, Any]] = {}
        """Job id (the block's first instance id) -> {"instances": [ids], "status": JobStatus, "cancelled": bool}."""
        self._lock = threading.Lock()
        self._client: Any = None
        self._network: dict[str, Any] | None = None
        self._next_subnet = 0

    # -- session and network -------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 EC2 client, created on first use."""
        if self._client is None:
            boto3 = _boto3()
            from botocore.config import Config as BotoConfig

            kwargs: dict[str, Any] = {"region_name": self.region}
            if self.key_file is not None:
                try:
                    with open(self.key_file) as f:
                        keys = json.load(f)
                    kwargs.update(aws_access_key_id=keys["AWSAccessKeyId"], aws_secret_access_key=keys["AWSSecretKey"])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise ExecutionProviderException(
                        f"AWSProvider key_file {self.key_file!r} must be JSON with AWSAccessKeyId and "
                        f"AWSSecretKey: {exc!r}"
                    ) from exc
            elif self.profile is not None:
                kwargs["profile_name"] = self.profile
            try:
                session = boto3.session.Session(**kwargs)
            except Exception as exc:  # botocore ProfileNotFound and friends
                raise ExecutionProviderException(f"AWSProvider cannot open an AWS session: {exc}") from exc
            timeouts = BotoConfig(
                connect_timeout=self.cmd_timeout, read_timeout=self.cmd_timeout, retries={"max_attempts": 3}
            )
            self._client = session.client("ec2", config=timeouts)
        return self._client

    def _read_state(self) -> dict[str, Any]:
        try:
            with open(self.state_file) as f:
                state = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ExecutionProviderException(
                f"AWSProvider state_file {self.state_file!r} is unreadable: {exc}"
            ) from exc
        return state if isinstance(state, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, self.state_file)

    def _ensure_network(self) -> dict[str, Any]:
        if self._network is not None:
            return self._network
        if self.subnet_id is not None:
            self._network = {"snIDs": [self.subnet_id], "sgIDs": self.security_group_ids or []}
            return self._network
        state = self._read_state()
        if state.get("vpcID") and state.get("snIDs"):
            self._network = {**state, "sgIDs": [state["sgID"]] if state.get("sgID") else []}
            return self._network
        ec2, tag = self.client, [{"Key": "Name", "Value": f"flowlib-{self.label}"}]
        vpc = ec2.create_vpc(CidrBlock=_VPC_CIDR, TagSpecifications=[{"ResourceType": "vpc", "Tags": tag}])["Vpc"][
            "VpcId"
        ]
        state = {"vpcID": vpc, "snIDs": [], "instances": state.get("instances", [])}
        self._write_state(state)  # recorded at once, so that teardown() finds a half-built network too
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        state["igwID"] = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=state["igwID"], VpcId=vpc)
        state["rtID"] = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=state["rtID"], DestinationCidrBlock="0.0.0.0/0", GatewayId=state["igwID"])
        zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
        for i, zone in enumerate([z["ZoneName"] for z in zones["AvailabilityZones"]][:16]):
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{16 * i}.0/20", AvailabilityZone=zone)["Subnet"][
                "SubnetId"
            ]
            ec2.associate_route_table(RouteTableId=state["rtID"], SubnetId=subnet)
            ec2.modify_subnet_attribute(SubnetId=subnet, MapPublicIpOnLaunch={"Value": True})
            state["snIDs"].append(subnet)
        group = f"flowlib-{uuid.uuid4().hex[:8]}"
        state["sgID"] = ec2.create_security_group(GroupName=group, Description="flowlib workers", VpcId=vpc)["GroupId"]
        rules: list[dict[str, Any]] = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": _VPC_CIDR}]}]
        if self.key_name:
            rules.append({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})
        ec2.authorize_security_group_ingress(GroupId=state["sgID"], IpPermissions=rules)
        self._write_state(state)
        logger.info("created VPC %s with subnets %s and security group %s", vpc, state["snIDs"], state["sgID"])
        self._network = {**state, "sgIDs": [state["sgID"]]}
        return self._network

    # -- submit ----------------------------------------------------------------------------------

    def submit(self, command: str, tasks_per_node: int, job_name: str = "flowlib.auto") -> str:
        """Start ``nodes_per_block`` instances; return the first instance id as the job id."""
        ec2 = self.client
        try:
            network = self._ensure_network()
            subnets = network["snIDs"]
            self._next_subnet += 1
            script = cloud_startup_script(
                self.worker_init,
                call_launcher(self.launcher, command, tasks_per_node, 1, self.script_dir),
                self._walltime,
                self.linger,
            )
            tags = [
                {"Key": "Name", "Value": f"flowlib-{self.label}-{job_name}"},
                {"Key": "flowlib-job-name", "Value": job_name},
            ]
            request: dict[str, Any] = {
                "ImageId": self.image_id,
                "InstanceType": self.instance_type,
                "MinCount": self.nodes_per_block,
                "MaxCount": self.nodes_per_block,
                "UserData": script,
                "SubnetId": subnets[self._next_subnet % len(subnets)],
                "InstanceInitiatedShutdownBehavior": "terminate",
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
            }
            if network["sgIDs"]:
                request["SecurityGroupIds"] = network["sgIDs"]
            if self.key_name:
                request["KeyName"] = self.key_name
            if self.iam_instance_profile_arn:
                request["IamInstanceProfile"] = {"Arn": self.iam_instance_profile_arn}
            if self.spot_max_bid:
                spot = {"MaxPrice": str(self.spot_max_bid), "SpotInstanceType": "one-time"}
                request["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot}
            answer = ec2.run_instances(**request)
        except Exception as exc:  # botocore ClientError, NoCredentialsError, EndpointConnectionError ...
            raise SubmitException(job_name, f"EC2 refused to start {self.nodes_per_block} instance(s): {exc}") from exc
        instances = [i["InstanceId"] for i in answer["Instances"]]
        job_id = instances[0]
        with self._lock:
            self.resources[job_id] = {"instances": instances, "status": JobStatus(JobState.PENDING), "cancelled": False}
            self._record_instances(add=instances)
        logger.debug("submitted block %s as instances %s", job_name, instances)
        return job_id

    def _record_instances(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        if self.subnet_id is not None:
            return
        state = self._read_state()
        known = [i for i in state.get("instances", []) if i not in set(remove)]
        state["instances"] = known + [i for i in add if i not in known]
        self._write_state(state)

    # -- status ----------------------------------------------------------------------------------

    def _describe(self, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        paginator = self.client.get_paginator("describe_instances")
        for start in range(0, len(instance_ids), 200):
            chunk = instance_ids[start : start + 200]
            try:
                for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": chunk}]):
                    for reservation in page["Reservations"]:
                        found.update({i["InstanceId"]: i for i in reservation["Instances"]})
            except Exception as exc:
                raise SchedulerCommandError("ec2 describe_instances", str(exc)) from exc
        return found

    def status(self, job_ids: list[str]) -> list[JobStatus]:
        """One describe_instances call per 200 instances; ended blocks are not asked again."""
        with self._lock:
            for job_id in job_ids:
                self.resources.setdefault(job_id, {"instances": [job_id], "status": None, "cancelled": False})
            asked = [
                j for j in job_ids if self.resources[j]["status"] is None or not self.resources[j]["status"].terminal
            ]
            instance_ids = [i for j in asked for i in self.resources[j]["instances"]]
        found = self._describe(instance_ids) if instance_ids else {}
        with self._lock:
            for job_id in asked:
                entry = self.resources[job_id]
                states, messages = [], []
                for iid in entry["instances"]:
                    state, message = _instance_state(found.get(iid), entry["cancelled"])
                    states.append(state)
                    if message:
                        messages.append(f"{iid}: {message}")
                entry["status"] = JobStatus(_combine(states), "; ".join(messages) or None)
            return [self.resources[j]["status"] for j in job_ids]

    # -- cancel ----------------------------------------------------------------------------------

    def cancel(self, job_ids: list[str]) -> list[bool]:
        """Terminate every instance of the blocks, in one call per 500 instances."""
        with self._lock:
            wanted = {j: list(self.resources.get(j, {}).get("instances", [j])) for j in job_ids}
        every = [i for ids in wanted.values() for i in ids]
        done: set[str] = set()
        ec2 = self.client
        for start in range(0, len(every), 500):
            chunk = every[start : start + 500]
            try:
                answer = ec2.terminate_instances(InstanceIds=chunk)
                done.update(i["InstanceId"] for i in answer.get("TerminatingInstances", []))
            except Exception as exc:
                logger.warning("cannot terminate instances %s: %s", chunk, exc)
                for iid in chunk:  # one by one, so that one unknown id does not block the others
                    try:
                        ec2.terminate_instances(InstanceIds=[iid])
                        done.add(iid)
                    except Exception as one:
                        if "InvalidInstanceID.NotFound" in str(one):
                            done.add(iid)
        results = []
        with self._lock:
            for job_id, ids in wanted.items():
                ok = all(i in done for i in ids)
                entry = self.resources.setdefault(job_id, {"instances": ids, "status": None, "cancelled": False})
                if ok:
                    entry["cancelled"] = True
                    entry["status"] = JobStatus(JobState.CANCELLED, "instances terminated by flowlib")
                results.append(ok)
            self._record_instances(remove=sorted(done))
        return results

    def teardown(self) -> None:
        """Terminate every instance recorded in ``state_file``, then delete the network flowlib created."""
        state, ec2, errors = self._read_state(), self.client, []

        def attempt(what: str, call: Any, **kwargs: Any) -> None:
            try:
                call(**kwargs)
            except Exception as exc:
                errors.append(f"{what}: {exc}")

        known = {i for entry in self.resources.values() for i in entry["instances"]}
        instances = sorted(set(state.get("instances", [])) | known)
        if instances:
            self.cancel(instances)
            wait = ec2.get_waiter("instance_terminated").wait
            attempt("wait for termination", wait, InstanceIds=instances, WaiterConfig={"Delay": 5, "MaxAttempts": 120})
        if state.get("sgID"):
            attempt(f"delete {state['sgID']}", ec2.delete_security_group, GroupId=state["sgID"])
        if state.get("rtID"):
            for table in ec2.describe_route_tables(RouteTableIds=[state["rtID"]])["RouteTables"]:
                for link in [a for a in table.get("Associations", []) if not a.get("Main")]:
                    attempt("disassociate", ec2.disassociate_route_table, AssociationId=link["RouteTableAssociationId"])
        for subnet in state.get("snIDs", []):
            attempt(f"delete {subnet}", ec2.delete_subnet, SubnetId=subnet)
        if state.get("rtID"):
            attempt(f"delete {state['rtID']}", ec2.delete_route_table, RouteTableId=state["rtID"])
        if state.get("igwID"):
            igw = state["igwID"]
            attempt(f"detach {igw}", ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=state["vpcID"])
            attempt(f"delete {igw}", ec2.delete_internet_gateway, InternetGatewayId=igw)
        if state.get("vpcID"):
            attempt(f"delete {state['vpcID']}", ec2.delete_vpc, VpcId=state["vpcID"])
        if errors:  # keep the state file, so that a second teardown() can finish the job
            raise ExecutionProviderException(f"AWSProvider teardown left resources behind: {'; '.join(errors)}")
        if os.path.exists(self.state_file):
            os.remove(self.state_file)
        self._network = None


def _instance_state(instance: dict[str, Any] | None, cancelled: bool) -> tuple[JobState, str | None]:
    if instance is None:
        if cancelled:
            return JobState.CANCELLED, None
        return JobState.MISSING, "EC2 does not know this instance (never existed, or ended over an hour ago)"
    name = instance["State"]["Name"]
    state = INSTANCE_STATES.get(name, JobState.UNKNOWN)
    reason = (instance.get("StateReason") or {}).get("Code", "")
    if state.terminal:
        if cancelled:
            state = JobState.CANCELLED
        elif reason.startswith("Server."):
            state = JobState.FAILED
        elif reason.startswith("Client.") and reason != "Client.InstanceInitiatedShutdown":
            state = JobState.CANCELLED
    text = (instance.get("StateReason") or {}).get("Message") if state.terminal else None
    return state, text or (f"EC2 state {name!r}" if state is JobState.UNKNOWN else None)


def _combine(states: list[JobState]) -> JobState:
    for state in (JobState.FAILED, JobState.RUNNING, JobState.PENDING, JobState.UNKNOWN, JobState.MISSING):
        if state in states:
            return state
    return JobState.CANCELLED if JobState.CANCELLED in states else JobState.COMPLETED
