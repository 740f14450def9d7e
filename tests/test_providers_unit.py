"""Provider unit tests: validation, scripts, parsing, retries and batching, without a real scheduler.

Scheduler commands go through ``ScriptedChannel``, an in-process channel that answers
with canned ``sbatch``/``squeue``/``qstat``... output. PBS Pro and Torque, which cannot
run here, are also driven end to end through the fake qsub/qstat/qdel in
tests/fakebin_sched, which print the formats those schedulers document.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import flowlib.providers
from flowlib.channels.base import Channel
from flowlib.channels.errors import ChannelTimeout
from flowlib.errors import ConfigurationError
from flowlib.jobs.states import JobState, JobStatus
from flowlib.launchers import AprunLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
from flowlib.providers import GridEngineProvider, LocalProvider, PBSProProvider, SlurmProvider, TorqueProvider
from flowlib.providers.errors import SchedulerCommandError, SubmitException
from flowlib.providers.slurm import SLURM_LONG_STATES, SQUEUE_STATES
from flowlib.providers.torque import parse_qstat_full
from flowlib.providers.walltime import parse_walltime

pytestmark = pytest.mark.timeout(30)

FAKEBIN = Path(__file__).parent / "fakebin_sched"
Answer = tuple[int, str, str] | Exception | Callable[[str], tuple[int, str, str]]


class ScriptedChannel(Channel):
    """Answers commands from a script: ``{regex: [answer, ...]}``; the last answer repeats."""

    def __init__(self, script: dict[str, list[Answer]] | None = None) -> None:
        self.script = {re.compile(k): list(v) for k, v in (script or {}).items()}
        self.commands: list[str] = []
        self.script_dir = None

    def execute_wait(self, cmd: str, walltime: float | None = None, envs: dict[str, str] | None = None):
        self.commands.append(cmd)
        for pattern, answers in self.script.items():
            if pattern.search(cmd):
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
                if isinstance(answer, Exception):
                    raise answer
                return answer(cmd) if callable(answer) else answer
        raise AssertionError(f"unexpected command {cmd!r}")

    def ran(self, prefix: str) -> list[str]:
        return [c for c in self.commands if c.startswith(prefix)]

    def push_file(self, source: str, dest_dir: str) -> str:
        raise AssertionError("no file moves expected")

    def pull_file(self, remote_source: str, local_dir: str) -> str:
        raise AssertionError("no file moves expected")

    def makedirs(self, path: str, mode: int = 0o700, exist_ok: bool = False) -> None:
        raise AssertionError("no directories expected")

    def isdir(self, path: str) -> bool:
        return True

    def abspath(self, path: str) -> str:
        return path


def slurm(tmp_path: Path, script: dict[str, list[Answer]], **kwargs: Any) -> tuple[SlurmProvider, ScriptedChannel]:
    channel = ScriptedChannel(script)
    provider = SlurmProvider(channel=channel, **kwargs)
    provider.script_dir = str(tmp_path)
    provider.retry_backoff = 0.001
    return provider, channel


def submitted(provider: Any, job_ids: list[str], tmp_path: Path) -> None:
    """Put jobs into a provider's table as if it had submitted them."""
    for job_id in job_ids:
        provider.resources[job_id] = {
            "job_id": job_id,
            "job_name": f"job{job_id}",
            "status": JobStatus(JobState.PENDING),
            "submit_time": time.time(),
            "script_path": str(tmp_path / f"{job_id}.submit"),
            "stdout_path": str(tmp_path / f"{job_id}.stdout"),
            "stderr_path": str(tmp_path / f"{job_id}.stderr"),
        }


# ---- walltime and construction -----------------------------------------------------------


def test_walltime_forms():
    assert parse_walltime("00:10:00").seconds == 600
    assert parse_walltime("36:00:00").slurm == "1-12:00:00"
    assert parse_walltime("1-12:00:00").hms == "36:00:00"
    assert parse_walltime("0-00:00:30").slurm == "00:00:30"


@pytest.mark.parametrize("bad", ["10", "10:00", "00:60:00", "1:2:3", "ten minutes", "00:00:00", "-1:00:00"])
def test_walltime_wrong_format_is_a_value_error_naming_it(bad: str):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        SlurmProvider(walltime=bad)


def test_walltime_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="walltime"):
        GridEngineProvider(walltime=600)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"nodes_per_block": 0}, ValueError, "nodes_per_block"),
        ({"nodes_per_block": "2"}, TypeError, "nodes_per_block"),
        ({"nodes_per_block": True}, TypeError, "nodes_per_block"),
        ({"min_blocks": 3, "max_blocks": 2}, ValueError, "min_blocks=3"),
        ({"init_blocks": -1}, ValueError, "init_blocks"),
        ({"parallelism": 1.5}, ValueError, "parallelism"),
        ({"cmd_timeout": 0}, ValueError, "cmd_timeout"),
        ({"mem_per_node": -1}, ValueError, "mem_per_node"),
        ({"cores_per_node": 0}, ValueError, "cores_per_node"),
        ({"partition": 3}, TypeError, "partition"),
        ({"exclusive": "yes"}, TypeError, "exclusive"),
        ({"launcher": "srun"}, TypeError, "launcher"),
        ({"channel": object()}, TypeError, "channel"),
        ({"regex_job_id": "no group"}, ValueError, "regex_job_id"),
    ],
)
def test_slurm_constructor_checks(kwargs: dict[str, Any], error: type[Exception], words: str):
    with pytest.raises(error, match=re.escape(words)):
        SlurmProvider(**kwargs)


@pytest.mark.parametrize("provider", [SlurmProvider, LocalProvider])
def test_init_blocks_above_max_blocks_is_accepted_as_in_parsl(provider: Any):
    p = provider(init_blocks=3, min_blocks=0, max_blocks=1)
    assert (p.init_blocks, p.max_blocks) == (3, 1)


def test_a_launcher_the_provider_cannot_use_is_a_configuration_error_naming_both():
    with pytest.raises(ConfigurationError, match=r"GridEngineProvider.*SrunLauncher|SrunLauncher.*GridEngineProvider"):
        GridEngineProvider(launcher=SrunLauncher())
    with pytest.raises(ConfigurationError, match="PBSProProvider.*SrunLauncher"):
        PBSProProvider(launcher=SrunLauncher())
    with pytest.raises(ConfigurationError, match="SlurmProvider.*AprunLauncher"):
        SlurmProvider(launcher=AprunLauncher())
    with pytest.raises(ConfigurationError, match="nodes_per_block=2.*SingleNodeLauncher"):
        SlurmProvider(nodes_per_block=2, launcher=SingleNodeLauncher())
    TorqueProvider(launcher=AprunLauncher())  # aprun runs inside PBS/Torque jobs on Cray machines
    SlurmProvider(nodes_per_block=2)  # srun spreads over the nodes


def test_grid_engine_several_nodes_need_a_parallel_environment():
    with pytest.raises(ValueError, match="pe="):
        GridEngineProvider(nodes_per_block=2, launcher=SimpleLauncher())
    GridEngineProvider(nodes_per_block=2, pe="mpi", launcher=SimpleLauncher())


def test_constructors_do_no_io_and_share_no_defaults():
    channel = ScriptedChannel()  # any command would fail the test
    built = [
        cls(channel=channel)
        for cls in (SlurmProvider, GridEngineProvider, PBSProProvider, TorqueProvider, LocalProvider)
    ]
    assert channel.commands == []
    assert SlurmProvider().launcher is not SlurmProvider().launcher
    assert LocalProvider().channel is not LocalProvider().channel
    assert all(p.resources == {} for p in built)


def test_submit_without_script_dir_is_a_clear_error():
    provider = SlurmProvider(channel=ScriptedChannel())
    with pytest.raises(ConfigurationError, match="script_dir"):
        provider.submit("true", 1)


def test_lazy_provider_names(monkeypatch: pytest.MonkeyPatch):
    fake = types.ModuleType("flowlib.providers.lsf")

    class LSFProvider:
        pass

    fake.LSFProvider = LSFProvider  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flowlib.providers.lsf", fake)
    monkeypatch.delitem(vars(flowlib.providers), "LSFProvider", raising=False)
    assert flowlib.providers.LSFProvider is LSFProvider
    assert "KubernetesProvider" in dir(flowlib.providers)
    with pytest.raises(AttributeError, match="NoSuchProvider"):
        flowlib.providers.NoSuchProvider  # noqa: B018


def test_import_stays_light():
    heavy = ("boto3", "kubernetes", "paramiko", "zmq")
    code = f"import sys, flowlib.providers; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# ---- submit scripts ----------------------------------------------------------------------


def test_slurm_script_directives(tmp_path: Path):
    provider, channel = slurm(
        tmp_path,
        {"^sbatch": [(0, "4242\n", "")]},
        partition="debug",
        account="proj",
        qos="low",
        constraint="haswell",
        cores_per_node=8,
        mem_per_node=2,
        gpus_per_node=1,
        gres="gpu:1",
        walltime="1-02:00:00",
        scheduler_options="#SBATCH --comment=hello",
    )
    assert provider.submit("echo hi", 2, "flowlib.htex.block-0") == "4242"
    record = provider.resources["4242"]
    text = Path(record["script_path"]).read_text()
    for line in [
        "#SBATCH --partition=debug",
        "#SBATCH --account=proj",
        "#SBATCH --qos=low",
        "#SBATCH --constraint=haswell",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=2048M",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --exclusive",
        "#SBATCH --time=1-02:00:00",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --comment=hello",
        f"#SBATCH --output={record['stdout_path']}",
    ]:
        assert line in text.splitlines()
    assert record["job_name"].startswith("flowlib.htex.block-0.")
    assert record["status"].state is JobState.PENDING
    assert channel.commands == [f"sbatch --parsable {record['script_path']}"]


@pytest.mark.parametrize(
    "cls, kwargs, lines",
    [
        (GridEngineProvider, {"queue": "all.q", "pe": "smp", "cores_per_node": 4}, ["#$ -q all.q", "#$ -pe smp 4"]),
        (TorqueProvider, {"queue": "batch", "account": "a1"}, ["#PBS -l nodes=1:ppn=2", "#PBS -q batch", "#PBS -A a1"]),
        (
            PBSProProvider,
            {"select_options": "ngpus=1", "cpus_per_node": 8, "walltime": "1-00:00:00"},
            ["#PBS -l select=1:ncpus=8:ngpus=1", "#PBS -l walltime=24:00:00"],
        ),
    ],
)
def test_other_scripts_directives(tmp_path: Path, cls: Any, kwargs: dict[str, Any], lines: list[str]):
    channel = ScriptedChannel({"^qsub": [(0, "77.server\n" if cls is not GridEngineProvider else "77\n", "")]})
    provider = cls(channel=channel, **kwargs)
    provider.script_dir = str(tmp_path)
    job_id = provider.submit("echo hi", 2)
    text = Path(provider.resources[job_id]["script_path"]).read_text().splitlines()
    for line in lines:
        assert line in text


@pytest.mark.parametrize("cls", [SlurmProvider, GridEngineProvider, PBSProProvider, TorqueProvider, LocalProvider])
def test_rendered_scripts_run_and_stop_on_a_failed_worker_init(tmp_path: Path, cls: Any):
    """Every template, run with bash: the launcher's command runs; a failing worker_init stops it."""
    marker = tmp_path / "marker"
    for worker_init, expected_rc in [("export GREETING=hello", 0), ("no_such_command_xyz", 127), ("(exit 3)", 3)]:
        provider = cls(channel=ScriptedChannel(), launcher=SimpleLauncher(debug=False), worker_init=worker_init)
        text = provider.render(
            {
                "job_name": "t",
                "stdout_path": "/dev/null",
                "stderr_path": "/dev/null",
                "nodes_per_block": "1",
                "tasks_per_node": "1",
                "walltime": "00:10:00",
                "scheduler_options": "",
                "worker_init": worker_init,
                "launch_command": provider.launcher(f'echo "$GREETING" > {marker}', 1, 1),
                **({"directives": ""} if cls is not LocalProvider else {}),
            }
        )
        script = tmp_path / "job.sh"
        script.write_text(text)
        marker.unlink(missing_ok=True)
        proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20)
        assert proc.returncode == expected_rc, proc.stderr
        if expected_rc:
            assert not marker.exists() and "worker_init failed" in proc.stderr
        else:
            assert marker.read_text() == "hello\n"


# ---- sbatch answers ----------------------------------------------------------------------


@pytest.mark.parametrize("answer, job_id", [("12\n", "12"), ("12;cluster2\n", "12"), ("warning\n13\n", "13")])
def test_sbatch_job_id(tmp_path: Path, answer: str, job_id: str):
    provider, _ = slurm(tmp_path, {"^sbatch": [(0, answer, "")]})
    assert provider.submit("true", 1) == job_id


def test_sbatch_refusal_is_a_submit_exception_with_its_stderr(tmp_path: Path):
    err = (
        "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    provider, channel = slurm(tmp_path, {"^sbatch": [(1, "", err)]}, partition="nope")
    with pytest.raises(SubmitException, match="invalid partition specified: nope") as info:
        provider.submit("true", 1)
    assert "exited with code 1 (asked for partition='nope')" in str(info.value)
    assert len(channel.ran("sbatch")) == 1  # a refusal is not retried
    assert provider.resources == {}


def test_sbatch_garbage_answer(tmp_path: Path):
    provider, _ = slurm(tmp_path, {"^sbatch": [(0, "Submitted nothing\n", "")]})
    with pytest.raises(SubmitException, match="no job id"):
        provider.submit("true", 1)


def test_custom_regex_job_id(tmp_path: Path):
    provider, channel = slurm(
        tmp_path, {"^sbatch": [(0, "Submitted batch job 99\n", "")]}, regex_job_id=r"job (?P<id>\d+)"
    )
    assert provider.submit("true", 1) == "99"
    assert "--parsable" not in channel.commands[0]


def test_transient_sbatch_error_is_retried(tmp_path: Path):
    busy = (1, "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n")
    provider, channel = slurm(tmp_path, {"^sbatch": [busy, (0, "5\n", "")]})
    assert provider.submit("true", 1) == "5"
    assert len(channel.ran("sbatch")) == 2


def test_sbatch_timeout_is_not_repeated(tmp_path: Path):
    """A submit that timed out may have been accepted: no second job is submitted."""
    provider, channel = slurm(tmp_path, {"^sbatch": [ChannelTimeout("sbatch", 10)]})
    with pytest.raises(SubmitException, match="did not finish within 10 s"):
        provider.submit("true", 1)
    assert len(channel.ran("sbatch")) == 1


def test_missing_scheduler_command_is_named(tmp_path: Path):
    provider, channel = slurm(tmp_path, {"^sbatch": [(127, "", "bash: line 1: sbatch: command not found\n")]})
    with pytest.raises(SubmitException, match="sbatch was not found on the PATH"):
        provider.submit("true", 1)
    provider2, _ = slurm(tmp_path, {"^squeue": [(127, "", "bash: squeue: command not found\n")]})
    submitted(provider2, ["1"], tmp_path)
    with pytest.raises(SchedulerCommandError, match="squeue was not found"):
        provider2.status(["1"])


# ---- squeue answers ----------------------------------------------------------------------


def test_squeue_states_and_reasons(tmp_path: Path):
    out = "1|PD|Resources\n2|R|None\n3|CD|None\n4|TO|TimeLimit\n5|ZZ|None\n"
    provider, channel = slurm(tmp_path, {"^squeue": [(0, out, "")], "^tail": [(0, "", "")]})
    submitted(provider, ["1", "2", "3", "4", "5"], tmp_path)
    states = [s.state for s in provider.status(["1", "2", "3", "4", "5"])]
    assert states == [JobState.PENDING, JobState.RUNNING, JobState.COMPLETED, JobState.TIMEOUT, JobState.UNKNOWN]
    assert "--jobs=1,2,3,4,5" in channel.commands[0] and "--states=all" in channel.commands[0]
    assert provider.resources["1"]["status"].message == "squeue state PD, reason Resources"


def test_failed_job_status_carries_exit_code_and_stderr(tmp_path: Path):
    script = {
        "^squeue": [(0, "7|F|NonZeroExitCode\n", "")],
        "^scontrol": [(0, "JobId=7 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n", "")],
        "^tail -c 4096": [(0, "bash: line 9: conda: command not found\n", "")],
    }
    provider, channel = slurm(tmp_path, script)
    submitted(provider, ["7"], tmp_path)
    (status,) = provider.status(["7"])
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "conda: command not found" in (status.message or "")
    assert status.stderr_path == str(tmp_path / "7.stderr")
    provider.status(["7"])  # terminal: not polled again
    assert len(channel.ran("squeue")) == 1


def test_garbage_from_squeue_is_a_scheduler_command_error(tmp_path: Path):
    provider, _ = slurm(tmp_path, {"^squeue": [(0, "<html>Service Unavailable</html>\n", "")]})
    submitted(provider, ["1"], tmp_path)
    with pytest.raises(SchedulerCommandError, match="cannot parse squeue"):
        provider.status(["1"])
    assert provider.resources["1"]["status"].state is JobState.PENDING  # kept


def test_status_retries_timeouts_then_keeps_the_table(tmp_path: Path):
    timeout = ChannelTimeout("squeue", 10)
    provider, channel = slurm(tmp_path, {"^squeue": [timeout, timeout, (0, "1|R|None\n", "")]})
    submitted(provider, ["1"], tmp_path)
    assert provider.status(["1"])[0].state is JobState.RUNNING
    assert len(channel.ran("squeue")) == 3

    provider, channel = slurm(tmp_path, {"^squeue": [timeout]})
    submitted(provider, ["1"], tmp_path)
    provider.resources["1"]["status"] = JobStatus(JobState.RUNNING, "last seen running")
    with pytest.raises(SchedulerCommandError, match=r"squeue.*3 attempts"):
        provider.status(["1"])
    assert len(channel.ran("squeue")) == 3
    assert provider.resources["1"]["status"] == JobStatus(JobState.RUNNING, "last seen running")


def test_status_goes_in_batches(tmp_path: Path):
    def answer(cmd: str) -> tuple[int, str, str]:
        ids = cmd.rsplit("--jobs=", 1)[1].split(",")
        return 0, "".join(f"{i}|R|None\n" for i in ids), ""

    provider, channel = slurm(tmp_path, {"^squeue": [answer]})
    ids = [str(i) for i in range(1, 251)]
    submitted(provider, ids, tmp_path)
    assert all(s.state is JobState.RUNNING for s in provider.status(ids))
    assert [len(c.rsplit("=", 1)[1].split(",")) for c in channel.ran("squeue")] == [100, 100, 50]


def test_cancel_goes_in_batches_and_marks_the_table(tmp_path: Path):
    provider, channel = slurm(tmp_path, {"^scancel": [(0, "", "")]}, clusters="c1")
    ids = [str(i) for i in range(1, 251)]
    submitted(provider, ids, tmp_path)
    assert provider.cancel(ids) == [True] * 250
    assert [len(c.split()) - 2 for c in channel.ran("scancel")] == [100, 100, 50]
    assert channel.commands[0].startswith("scancel --clusters=c1 1 2 3")
    assert {r["status"].state for r in provider.resources.values()} == {JobState.CANCELLED}


def test_vanished_job_resolved_by_sacct(tmp_path: Path):
    sacct = "11|CANCELLED by 0|0:15|None\n12|COMPLETED|0:0|None\n13|TIMEOUT|0:0|TimeLimit\n"
    provider, channel = slurm(tmp_path, {"^squeue": [(0, "", "")], "^sacct": [(0, sacct, "")], "^tail": [(0, "", "")]})
    submitted(provider, ["11", "12", "13"], tmp_path)
    states = [s.state for s in provider.status(["11", "12", "13"])]
    assert states == [JobState.CANCELLED, JobState.COMPLETED, JobState.TIMEOUT]
    assert channel.ran("scontrol") == []


def test_vanished_job_without_accounting_falls_back_to_scontrol_then_missing(tmp_path: Path):
    script = {
        "^squeue": [(1, "", "slurm_load_jobs error: Invalid job id specified\n")],
        "^sacct": [(1, "", "Slurm accounting storage is disabled\n")],
        "^scontrol --oneliner show job 21": [(0, "JobId=21 JobState=COMPLETED Reason=None ExitCode=0:0\n", "")],
        "^scontrol --oneliner show job 22": [(1, "", "slurm_load_jobs error: Invalid job id specified\n")],
        "^tail": [(0, "", "")],
    }
    provider, channel = slurm(tmp_path, script)
    submitted(provider, ["21", "22", "23"], tmp_path)
    provider.resources.pop("23")
    script_22 = provider.status(["21", "22"])
    assert [s.state for s in script_22] == [JobState.COMPLETED, JobState.MISSING]
    assert "no longer knows job 22" in (script_22[1].message or "")
    assert "accounting disabled" in (script_22[1].message or "")
    provider.resources["22"]["status"] = JobStatus(JobState.RUNNING)
    provider.status(["22"])
    assert len(channel.ran("sacct")) == 1  # accounting known to be off: not asked again


def test_state_tables_cover_the_documented_codes():
    documented = "BF CA CD CF CG DL F NF OOM PD PR R RD RF RH RQ RS RV SI SE SO ST S TO".split()
    assert sorted(SQUEUE_STATES) == sorted(documented)
    for name in ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PENDING",
                 "PREEMPTED", "RUNNING", "REQUEUED", "RESIZING", "REVOKED", "SUSPENDED", "TIMEOUT"):  # fmt: skip
        assert name in SLURM_LONG_STATES


# ---- Grid Engine answers -----------------------------------------------------------------

QSTAT_HEADER = "job-ID  prior   name       user         state submit/start at     queue" + " " * 26 + "slots ja-task-ID"
QSTAT = (
    QSTAT_HEADER
    + "\n"
    + "-" * 113
    + "\n"
    + """     31 0.55500 block-0    flowtest     r     06/01/2024 10:00:01 all.q@node1                        1
     32 0.55500 block-1    flowtest     qw    06/01/2024 10:00:02                                    1
     33 0.55500 block-2    flowtest     Eqw   06/01/2024 10:00:02                                    1
     34 0.55500 block-3    flowtest     hqw   06/01/2024 10:00:02                                    1
     35 0.55500 block-4    flowtest     dr    06/01/2024 10:00:02 all.q@node1                        1
"""
)


def qacct(failed: str, exit_status: str, wallclock: str = "3s") -> str:
    return (
        "==============================================================\nqname        all.q\njobnumber    36\n"
        f"failed       {failed}\nexit_status  {exit_status}\nru_wallclock {wallclock}\n"
    )


def test_grid_engine_states_and_accounting(tmp_path: Path):
    script = {
        "^qstat": [(0, QSTAT, "")],
        "^qacct -j 36": [(0, qacct("0", "0"), "")],
        "^qacct -j 37": [(0, qacct("0", "3"), "")],
        "^qacct -j 38": [(0, qacct("100 : assumedly after job", "137                  (Killed)"), "")],
        "^qacct -j 39": [(0, qacct("100 : assumedly after job", "137", "1s"), "")],
        "^qacct -j 40": [(1, "", "error: job id 40 not found\n")],
        "^tail": [(0, "", "")],
    }
    channel = ScriptedChannel(script)
    provider = GridEngineProvider(channel=channel, walltime="00:00:03")
    ids = [str(i) for i in range(31, 41)]
    submitted(provider, ids, tmp_path)
    provider.accounting_grace = 0
    states = [s.state for s in provider.status(ids)]
    assert states == [
        JobState.RUNNING,
        JobState.PENDING,
        JobState.FAILED,
        JobState.HELD,
        JobState.CANCELLED,
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.TIMEOUT,  # killed at its h_rt of 3 s
        JobState.CANCELLED,  # killed after 1 s: qdel
        JobState.MISSING,
    ]
    assert provider.resources["37"]["status"].exit_code == 3
    assert len(channel.ran("qstat")) == 1


def test_grid_engine_waits_for_accounting_before_missing(tmp_path: Path):
    channel = ScriptedChannel({"^qstat": [(0, "", "")], "^qacct": [(1, "", "error: job id 5 not found\n")]})
    provider = GridEngineProvider(channel=channel)
    submitted(provider, ["5"], tmp_path)
    provider.resources["5"]["status"] = JobStatus(JobState.RUNNING)
    assert provider.status(["5"])[0].state is JobState.RUNNING  # not yet in qacct: keep the last state
    provider.accounting_grace = 0
    status = provider.status(["5"])[0]
    assert status.state is JobState.MISSING and "qacct has no record" in (status.message or "")


def test_grid_engine_garbage_and_cancel(tmp_path: Path):
    channel = ScriptedChannel(
        {
            "^qstat": [(0, "Segmentation fault\n", "")],
            "^qdel": [(1, "root has registered the job 8 for deletion\n", 'denied: job "9" does not exist\n')],
        }
    )
    provider = GridEngineProvider(channel=channel)
    submitted(provider, ["8", "9"], tmp_path)
    with pytest.raises(SchedulerCommandError, match="cannot parse qstat"):
        provider.status(["8"])
    assert provider.cancel(["8", "9"]) == [True, False]
    assert provider.resources["8"]["status"].state is JobState.CANCELLED
    assert provider.resources["9"]["status"].state is JobState.PENDING


# ---- PBS Pro and Torque ------------------------------------------------------------------

# The full format of qstat(1B) -f: a "Job Id:" line, indented "key = value" lines, long
# values continued on tab-indented lines (PBS Pro Reference Guide, "qstat"; Torque's
# "Job Exit Status" page shows the same layout with exit_status).
QSTAT_FULL = """Job Id: 101.pbs01
    Job_Name = flowlib.block
    job_state = F
    Resource_List.walltime = 00:01:00
    resources_used.walltime = 00:00:04
    Variable_List = PBS_O_HOME=/home/u,PBS_O_PATH=/usr/bin:/b
\tin,PBS_O_SHELL=/bin/bash
    Exit_status = 2

Job Id: 102.pbs01
    job_state = R
    comment = Job run at Mon Jun 03 at 10:00 on (n1:ncpus=4)
"""


def test_parse_qstat_full():
    jobs = parse_qstat_full(QSTAT_FULL)
    assert jobs["101.pbs01"]["Variable_List"].endswith("/usr/bin:/bin,PBS_O_SHELL=/bin/bash")
    assert jobs["101.pbs01"]["Exit_status"] == "2"
    assert jobs["102.pbs01"]["job_state"] == "R"
    with pytest.raises(ValueError, match="unexpected line"):
        parse_qstat_full("garbage\n")


@pytest.mark.parametrize(
    "exit_status, used, state",
    [("0", "00:00:04", JobState.COMPLETED), ("2", "00:00:04", JobState.FAILED),
     ("-1", "00:00:00", JobState.FAILED), ("271", "00:00:04", JobState.CANCELLED),
     ("271", "00:01:00", JobState.TIMEOUT), ("-29", "00:01:00", JobState.TIMEOUT)],
)  # fmt: skip
def test_pbspro_exit_status(tmp_path: Path, exit_status: str, used: str, state: JobState):
    text = QSTAT_FULL.replace("Exit_status = 2", f"Exit_status = {exit_status}").replace("00:00:04", used)
    channel = ScriptedChannel({"^qstat -f -x": [(0, text, "")], "^tail": [(0, "", "")]})
    provider = PBSProProvider(channel=channel)
    submitted(provider, ["101.pbs01", "102.pbs01"], tmp_path)
    assert [s.state for s in provider.status(["101.pbs01", "102.pbs01"])] == [state, JobState.RUNNING]


@pytest.fixture
def fake_pbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "fake-pbs"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{FAKEBIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PBS_DIR", str(state))
    monkeypatch.setenv("FAKE_PBS_PYTHON", sys.executable)
    return tmp_path


def wait_terminal(provider: Any, job_id: str, timeout: float = 15) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = provider.status([job_id])[0]
        if status.terminal or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@pytest.mark.parametrize("cls, flavor", [(PBSProProvider, "pbspro"), (TorqueProvider, "torque")])
def test_pbs_against_documented_output(fake_pbs: Path, monkeypatch: pytest.MonkeyPatch, cls: Any, flavor: str):
    """Submit, complete, fail at start, cancel and vanish through fake qsub/qstat/qdel."""
    monkeypatch.setenv("FAKE_PBS_FLAVOR", flavor)
    provider = cls(launcher=SimpleLauncher(debug=False), queue="workq")
    provider.script_dir = str(fake_pbs / "scripts")
    marker = fake_pbs / "marker"

    job = provider.submit(f"echo done > {marker}", 1)
    assert job.endswith(".fakeserver")
    status = wait_terminal(provider, job)
    assert status.state is JobState.COMPLETED and marker.read_text() == "done\n"

    failing = cls(launcher=SimpleLauncher(debug=False), worker_init="echo init-broke >&2; (exit 3)")
    failing.script_dir = provider.script_dir
    status = wait_terminal(failing, failing.submit("true", 1))
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert "init-broke" in (status.message or "")

    sleeper = provider.submit("sleep 30", 1)
    assert provider.status([sleeper])[0].state is JobState.RUNNING
    assert provider.cancel([sleeper]) == [True]
    assert provider.status([sleeper])[0].state is JobState.CANCELLED

    behind_back = provider.submit("sleep 30", 1)
    subprocess.run(["qdel", behind_back], check=True)
    status = wait_terminal(provider, behind_back)
    assert status.state is JobState.CANCELLED and "signal 15" in (status.message or "")

    gone = provider.submit("true", 1)
    (fake_pbs / "fake-pbs" / f"{gone.split('.')[0]}.json").unlink()
    status = provider.status([gone])[0]
    assert status.state is JobState.MISSING and "no longer knows" in (status.message or "")


def test_pbs_unknown_queue_and_garbage(fake_pbs: Path, monkeypatch: pytest.MonkeyPatch):
    provider = PBSProProvider(launcher=SimpleLauncher(), queue="nosuchq")
    provider.script_dir = str(fake_pbs / "scripts")
    with pytest.raises(SubmitException, match="Unknown queue"):
        provider.submit("true", 1)
    provider.queue = None
    job = provider.submit("true", 1)
    monkeypatch.setenv("FAKE_PBS_GARBAGE", "1")
    with pytest.raises(SchedulerCommandError, match="cannot parse qstat"):
        provider.status([job])
