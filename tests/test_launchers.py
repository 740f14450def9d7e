"""Launchers, tested by running the shell text they produce.

Unit tests run that text with bash and the fake ``srun``, ``scontrol``, ``aprun``,
``jsrun``, ``mpiexec`` and ``mpirun`` of tests/fakebin on PATH: each copy of the
command dumps its environment to a file of its own, and the tests count the
copies and check their rank variables and (fake) nodes.

Real-tool tests run the same text with Open MPI's ``mpiexec``/``mpirun`` and GNU
``parallel`` (installed by tests/services/install-launcher-tools.sh when the tests
run as root) and with the real ``srun`` inside ``sbatch --wait`` when a Slurm
cluster answers ``sinfo``; each is skipped, with the reason, when its tool is
missing.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from child_signals import default_sigint

import flowlib.launchers
from flowlib.launchers import (
    AprunLauncher,
    GnuParallelLauncher,
    JsrunLauncher,
    Launcher,
    MpiExecLauncher,
    MpiRunLauncher,
    SimpleLauncher,
    SingleNodeLauncher,
    SrunLauncher,
    SrunMPILauncher,
    WrappedLauncher,
)

pytestmark = pytest.mark.timeout(60)

TESTS = Path(__file__).resolve().parent
FAKEBIN = TESTS / "fakebin"
INSTALL_SCRIPT = TESTS / "services" / "install-launcher-tools.sh"
IS_ROOT = os.geteuid() == 0

ALL_NAMES = [
    "SimpleLauncher",
    "SingleNodeLauncher",
    "SrunLauncher",
    "SrunMPILauncher",
    "AprunLauncher",
    "JsrunLauncher",
    "MpiExecLauncher",
    "MpiRunLauncher",
    "GnuParallelLauncher",
    "WrappedLauncher",
]

# Each copy writes its environment, NUL-separated, to a file of its own.
RECORD = 'env -0 > "$FLOWLIB_TEST_OUT/copy.$$"'

# A command that no naive embedding survives: single and double quotes, $, backticks,
# braces (GNU parallel's replacement strings), our own template syntax, a backslash,
# glob and comment characters, and lines that look like a heredoc end or a subshell end.
NASTY_VALUE = 'it\'s "quoted" $HOME `echo no` {} {%} {1} @{command} \\ ; * # !x\n)\nEOF\n%s %d'
NASTY = (
    "value='it'\"'\"'s \"quoted\" $HOME `echo no` {} {%} {1} @{command} \\ ; * # !x\n"
    ")\n"
    "EOF\n"
    "%s %d'\n"
    'printf %s "$value" > "$FLOWLIB_TEST_OUT/nasty.$$"\n'
    'echo {} ${HOME+set} {%} >> "$FLOWLIB_TEST_OUT/nasty.$$"'
)
NASTY_OUTPUT = NASTY_VALUE + "{} set {%}\n"

# Variables that would make a launcher think it runs inside a batch job.
JOB_VARIABLES = ("PBS_NODEFILE", "PE_HOSTFILE", "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_JOB_ID")


# ---------------------------------------------------------------- helpers


def base_env(out: Path, fakes: bool, **extra: str) -> dict[str, str]:
    """This process's environment, outside any batch job, with fakebin first on PATH if ``fakes``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in JOB_VARIABLES and not key.startswith(("SLURM_", "OMPI_", "PMI_", "FAKE_", "PARALLEL"))
    }
    if fakes:
        env["PATH"] = f"{FAKEBIN}{os.pathsep}{env.get('PATH', '')}"
        env["FAKEBIN_PYTHON"] = sys.executable
    env["FLOWLIB_TEST_OUT"] = str(out)
    env.update(extra)
    return env


def run_text(text: str, env: dict[str, str], cwd: Path, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    """Run a launcher's text as a bash script, the way a provider's submit script would."""
    script = cwd / f"launch-{uuid.uuid4().hex[:8]}.sh"
    script.write_text(f"#!/bin/bash\n{text}\n")
    return subprocess.run(
        ["bash", str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def copies(out: Path) -> list[dict[str, str]]:
    """The environments the copies recorded, one dict per copy."""
    found = []
    for path in sorted(out.glob("copy.*")):
        pairs = (item.partition("=") for item in path.read_text().split("\0") if item)
        found.append({key: value for key, _, value in pairs})
    return found


def ranks(found: list[dict[str, str]], variable: str) -> list[int]:
    return sorted(int(env[variable]) for env in found)


def per_node(found: list[dict[str, str]], variable: str = "FAKE_NODE") -> dict[str, int]:
    return dict(Counter(env[variable] for env in found))


def fake_calls(log: Path, tool: str) -> list[list[str]]:
    import json

    if not log.exists():
        return []
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [call["argv"] for call in calls if call["tool"] == tool]


def nasty_outputs(out: Path) -> list[str]:
    return [path.read_text() for path in sorted(out.glob("nasty.*"))]


def wait_until(check: Callable[[], bool], timeout: float = 20, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message or f"not true within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def fake_log(tmp_path: Path) -> Path:
    return tmp_path / "fake-calls.jsonl"


@pytest.fixture
def fake_env(out: Path, fake_log: Path, tmp_path: Path) -> dict[str, str]:
    """Fakes first on PATH; Open MPI's root guard satisfied; temporary files under tmp_path/tmp."""
    (tmp_path / "tmp").mkdir()
    return base_env(
        out,
        fakes=True,
        FAKE_LAUNCH_LOG=str(fake_log),
        TMPDIR=str(tmp_path / "tmp"),
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
    )


def nodefile(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / f"nodefile-{uuid.uuid4().hex[:6]}"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


# ---------------------------------------------------------------- the public surface


def test_all_ten_launchers_are_exported() -> None:
    for name in ALL_NAMES:
        cls = getattr(flowlib.launchers, name)
        assert issubclass(cls, Launcher), name
        assert name in flowlib.launchers.__all__
        assert inspect.getdoc(cls), f"{name} has no docstring"
        assert inspect.signature(cls.__call__).return_annotation in (str, "str"), name
    from flowlib.launchers import launchers as old_path

    assert all(getattr(old_path, name) is getattr(flowlib.launchers, name) for name in ALL_NAMES)


def make(name: str, **kwargs: object) -> Launcher:
    cls = getattr(flowlib.launchers, name)
    if name == "WrappedLauncher":
        kwargs.setdefault("prepend", "env")
    launcher: Launcher = cls(**kwargs)
    return launcher


@pytest.mark.parametrize(
    ("name", "keyword", "value"),
    [(name, "debug", "yes") for name in ALL_NAMES]
    + [(name, "overrides", 3) for name in ("SrunLauncher", "SrunMPILauncher", "AprunLauncher", "JsrunLauncher")]
    + [
        ("MpiExecLauncher", "overrides", ["-x"]),
        ("MpiExecLauncher", "bind_cmd", None),
        ("MpiRunLauncher", "overrides", 1.5),
        ("MpiRunLauncher", "bash_location", Path("/bin/bash")),
        ("SingleNodeLauncher", "fail_on_any", 1),
        ("WrappedLauncher", "prepend", b"docker run"),
    ],
)
def test_constructor_type_errors_name_the_argument(name: str, keyword: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"{name} argument '{keyword}' must be"):
        make(name, **{keyword: value})


@pytest.mark.parametrize(
    ("name", "keyword"),
    [("SrunLauncher", "overrides"), ("MpiExecLauncher", "bind_cmd"), ("WrappedLauncher", "prepend")],
)
def test_shell_text_arguments_must_be_one_line(name: str, keyword: str) -> None:
    with pytest.raises(ValueError, match=rf"'{keyword}' must be a single line"):
        make(name, **{keyword: "--a\nrm -rf /"})


def test_mpirun_needs_a_bash_location() -> None:
    with pytest.raises(ValueError, match="bash_location"):
        MpiRunLauncher(bash_location="")


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize(
    ("args", "error", "pattern"),
    [
        ((b"cmd", 1, 1), TypeError, "'command' must be str"),
        (("  ", 1, 1), ValueError, "'command' must not be empty"),
        (("cmd", "2", 1), TypeError, "'tasks_per_node' must be int"),
        (("cmd", True, 1), TypeError, "'tasks_per_node' must be int"),
        (("cmd", 0, 1), ValueError, "'tasks_per_node' must be at least 1"),
        (("cmd", 1, 2.0), TypeError, "'nodes_per_block' must be int"),
        (("cmd", 1, -1), ValueError, "'nodes_per_block' must be at least 1"),
    ],
)
def test_call_errors_name_the_argument(name: str, args: tuple[object, ...], error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        make(name)(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [name for name in ALL_NAMES if name != "WrappedLauncher"])
def test_debug_adds_set_x_and_nothing_else(name: str) -> None:
    traced = make(name, debug=True)("true", 1, 1).splitlines()
    quiet = make(name, debug=False)("true", 1, 1).splitlines()
    assert "set -x" in traced
    assert "set -x" not in quiet

    def same_part(lines: list[str]) -> list[str]:
        # the only other line debug changes: SingleNodeLauncher's report of failed copies, on or off
        return [line for line in lines if line and line != "set -x" and "copies failed" not in line]

    assert same_part(traced) == same_part(quiet)


def test_repr_shows_the_constructor_arguments() -> None:
    assert (
        repr(SrunLauncher(debug=False, overrides="--exclusive")) == "SrunLauncher(debug=False, overrides='--exclusive')"
    )
    assert repr(SingleNodeLauncher(fail_on_any=True)) == "SingleNodeLauncher(debug=True, fail_on_any=True)"
    assert repr(WrappedLauncher("time")) == "WrappedLauncher(prepend='time', debug=True)"


def test_constructors_do_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a launcher constructor did I/O")

    monkeypatch.setattr("builtins.open", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(os, "system", refuse)
    for name in ALL_NAMES:
        make(name, debug=False)


def test_templates_take_only_at_brace_placeholders() -> None:
    from flowlib.launchers._template import ShellTemplate

    text = 'echo "$@" ${x} user@host @{value} @@{value}'
    assert ShellTemplate(text).substitute(value="$y @{value}") == 'echo "$@" ${x} user@host $y @{value} @$y @{value}'
    with pytest.raises(ValueError, match="Invalid placeholder"):
        ShellTemplate("@{Bad-Name}").substitute()
    with pytest.raises(KeyError, match="missing"):
        ShellTemplate("@{missing}").substitute()


# ---------------------------------------------------------------- Simple, Wrapped, SingleNode


def test_simple_runs_the_command_once(out: Path, tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(SimpleLauncher()(RECORD, 4, 1), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(copies(out)) == 1
    assert "+ /bin/bash -c" in result.stderr  # debug=True traces


def test_simple_warns_about_a_multi_node_block(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flowlib"):
        SimpleLauncher()("true", 1, 1)
        assert not caplog.records
        SimpleLauncher()("true", 1, 3)
    assert "first of the block's 3 nodes" in caplog.text


def test_simple_passes_on_the_exit_status(tmp_path: Path, fake_env: dict[str, str]) -> None:
    assert run_text(SimpleLauncher(debug=False)("exit 7", 1, 1), fake_env, tmp_path).returncode == 7


def test_wrapped_puts_the_prefix_in_front_of_the_command() -> None:
    # Parsl's documented behaviour: the prefix, a space, then the command as given.
    assert WrappedLauncher("docker")("test", 1, 1) == "docker test"
    assert WrappedLauncher("time", debug=False)("echo 'a b'", 1, 1, "/tmp") == "time echo 'a b'"


def test_wrapped_warns_about_copies_it_does_not_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flowlib"):
        WrappedLauncher("env")("true", 1, 1)
        assert not caplog.records
        WrappedLauncher("env")("true", 2, 3)
    assert "tasks per node" in caplog.text
    assert "nodes per block" in caplog.text


def test_wrapped_runs_the_command_behind_the_prefix_once(
    out: Path, tmp_path: Path, fake_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    launcher = WrappedLauncher(prepend='env FLOWLIB_WRAPPED="yes, $USER"', debug=False)
    with caplog.at_level(logging.WARNING, logger="flowlib"):
        text = launcher(RECORD, 2, 1)
    assert "runs once" in caplog.text
    result = run_text(text, {**fake_env, "USER": "me"}, tmp_path)
    assert result.returncode == 0, result.stderr
    [copy] = copies(out)
    assert copy["FLOWLIB_WRAPPED"] == "yes, me"


def test_wrapped_checks_its_call_arguments() -> None:
    with pytest.raises(TypeError, match="'tasks_per_node' must be int"):
        WrappedLauncher("env")("true", "1", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'command' must not be empty"):
        WrappedLauncher("env")("  ", 1, 1)


def test_single_node_starts_tasks_per_node_copies(out: Path, tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(SingleNodeLauncher()(RECORD, 3, 1), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "FLOWLIB_TASK_RANK") == [0, 1, 2]
    assert {env["FLOWLIB_TASK_COUNT"] for env in found} == {"3"}


def test_single_node_puts_a_whole_block_on_this_node(
    out: Path, tmp_path: Path, fake_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flowlib"):
        text = SingleNodeLauncher(debug=False)(RECORD, 2, 3)
    assert "all 6 copies on one node" in caplog.text
    assert run_text(text, fake_env, tmp_path).returncode == 0
    assert ranks(copies(out), "FLOWLIB_TASK_RANK") == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("fail_on_any", "failing_ranks", "expected_status"),
    [
        (False, [], 0),
        (False, [1], 0),
        (False, [0, 2], 0),
        (False, [0, 1, 2], 3),
        (True, [], 0),
        (True, [2], 5),
        (True, [0, 1, 2], 3),
    ],
)
def test_single_node_fail_on_any(
    fail_on_any: bool, failing_ranks: list[int], expected_status: int, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    # Rank r exits with status r + 3 when it is one of the failing ranks.
    failing = " ".join(str(rank) for rank in failing_ranks)
    command = f'for r in {failing}; do [ "$r" = "$FLOWLIB_TASK_RANK" ] && exit $((r + 3)); done; exit 0'
    result = run_text(SingleNodeLauncher(fail_on_any=fail_on_any, debug=True)(command, 3, 1), fake_env, tmp_path)
    assert result.returncode == expected_status, result.stderr
    assert (f"{len(failing_ranks)} of 3 copies failed" in result.stderr) == bool(failing_ranks), result.stderr
    # debug=False: the same exit status, and nothing on stderr (as Parsl's quiet launchers)
    quiet = run_text(SingleNodeLauncher(fail_on_any=fail_on_any, debug=False)(command, 3, 1), fake_env, tmp_path)
    assert quiet.returncode == expected_status
    assert quiet.stderr == ""


@contextlib.contextmanager
def launched(text: str, tmp_path: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run a launcher's script in a session of its own; afterwards nothing of that session outlives the test."""
    script = tmp_path / "launch.sh"
    script.write_text("#!/bin/bash\n" + text + "\n")
    process = subprocess.Popen(
        ["bash", str(script)],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=default_sigint,  # noqa: PLW1509 - bash cannot trap a signal it inherited ignored
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_single_node_passes_a_signal_on_to_its_copies(
    signum: signal.Signals, out: Path, tmp_path: Path, fake_env: dict[str, str]
) -> None:
    # Each copy records its pid and its parent (the launcher's subshell), then lives until killed.
    command = 'echo "$$ $PPID" > "$FLOWLIB_TEST_OUT/pid.$$"; exec sleep 300'
    with launched(SingleNodeLauncher(debug=False)(command, 3, 1), tmp_path, fake_env) as process:
        wait_until(lambda: len([p for p in out.glob("pid.*") if p.read_text().strip()]) == 3, message="copies")
        pairs = [path.read_text().split() for path in out.glob("pid.*")]
        children = [int(child) for child, _ in pairs]
        [subshell] = {int(parent) for _, parent in pairs}
        os.kill(subshell, signum)  # only the launcher's shell: it must pass the signal on
        assert process.wait(timeout=20) == 128 + signal.SIGTERM
        for child in children:
            with pytest.raises(ProcessLookupError):
                os.kill(child, 0)


def test_single_node_stops_starting_copies_when_a_signal_comes_meanwhile(
    tmp_path: Path, fake_env: dict[str, str]
) -> None:
    # The first copy signals the launcher's shell at once, while the other 39 are still being started:
    # every copy started before or after the signal must be told, or the launcher waits for it forever.
    command = '[ "$FLOWLIB_TASK_RANK" = 0 ] && kill -TERM $PPID; exec sleep 300'
    with launched(SingleNodeLauncher(debug=False)(command, 40, 1), tmp_path, fake_env) as process:
        assert process.wait(timeout=20) == 128 + signal.SIGTERM

        def copies_left() -> list[int]:
            return [
                proc.pid
                for proc in psutil.process_iter(["status"])
                if proc.info["status"] != psutil.STATUS_ZOMBIE and _pgid(proc.pid) == process.pid
            ]

        wait_until(lambda: not copies_left(), 10, "copies outlived the launcher")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


# ---------------------------------------------------------------- Slurm (fake srun/scontrol)


def test_srun_runs_tasks_per_node_on_every_node(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    text = SrunLauncher(overrides="--cpu-bind=none")(RECORD, 2, 3)
    result = run_text(text, {**fake_env, "SLURM_JOB_NODELIST": "node[1-3]"}, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "SLURM_PROCID") == list(range(6))
    assert per_node(found, "SLURMD_NODENAME") == {"node1": 2, "node2": 2, "node3": 2}
    [argv] = fake_calls(fake_log, "srun")
    assert argv[:5] == ["--nodes=3", "--ntasks=6", "--ntasks-per-node=2", "--label", "--cpu-bind=none"]


def test_srun_passes_on_the_highest_exit_status(tmp_path: Path, fake_env: dict[str, str]) -> None:
    text = SrunLauncher(debug=False)("exit $((SLURM_PROCID + 1))", 2, 1)
    assert run_text(text, {**fake_env, "SLURM_JOB_NODELIST": "n1"}, tmp_path).returncode == 2


def test_srun_mpi_starts_one_step_per_node(out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path) -> None:
    text = SrunMPILauncher(overrides="--export=ALL")(RECORD, 2, 3)
    result = run_text(text, {**fake_env, "SLURM_JOB_NODELIST": "nid[07-10]"}, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert per_node(found, "SLURMD_NODENAME") == {"nid07": 2, "nid08": 2, "nid09": 2}
    for node in ("nid07", "nid08", "nid09"):  # each step is its own: ranks 0..1 on its one node
        on_node = [env for env in found if env["SLURMD_NODENAME"] == node]
        assert ranks(on_node, "SLURM_PROCID") == [0, 1]
        assert {env["SLURM_STEP_NODELIST"] for env in on_node} == {node}
    steps = sorted(fake_calls(fake_log, "srun"))
    assert [argv[:6] for argv in steps] == [
        ["--nodes=1", "--ntasks=2", f"--nodelist={node}", "--overlap", "--label", "--export=ALL"]
        for node in ("nid07", "nid08", "nid09")
    ]


def test_srun_mpi_fails_when_a_step_fails(tmp_path: Path, fake_env: dict[str, str]) -> None:
    text = SrunMPILauncher(debug=False)('[ "$SLURMD_NODENAME" != b ] || exit 4', 1, 3)
    assert run_text(text, {**fake_env, "SLURM_JOB_NODELIST": "a,b,c"}, tmp_path).returncode == 4


def test_srun_mpi_needs_enough_nodes(tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(SrunMPILauncher()(RECORD, 1, 3), {**fake_env, "SLURM_JOB_NODELIST": "n[1-2]"}, tmp_path)
    assert result.returncode == 1
    assert "SrunMPILauncher: the block needs 3 nodes, this job has 2: n1 n2" in result.stderr


def test_srun_mpi_outside_slurm_says_so(tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(SrunMPILauncher()(RECORD, 1, 1), fake_env, tmp_path)
    assert result.returncode == 1
    assert "not inside a Slurm job" in result.stderr


# ---------------------------------------------------------------- Cray aprun, IBM jsrun (fakes)


def test_aprun_places_tasks_per_node(out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path) -> None:
    result = run_text(AprunLauncher(overrides="-cc none")(RECORD, 2, 3), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "ALPS_APP_PE") == list(range(6))
    assert sorted(per_node(found).values()) == [2, 2, 2]
    assert fake_calls(fake_log, "aprun")[0][:6] == ["-n", "6", "-N", "2", "-cc", "none"]


def test_jsrun_places_resource_sets_per_host(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    result = run_text(JsrunLauncher(overrides="-c ALL_CPUS")(RECORD, 3, 2), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "JSM_NAMESPACE_RANK") == list(range(6))
    assert per_node(found) == {"host0": 3, "host1": 3}
    assert fake_calls(fake_log, "jsrun")[0][:6] == ["-n", "6", "-r", "3", "-c", "ALL_CPUS"]


# ---------------------------------------------------------------- mpiexec / mpirun (fakes)


def test_mpiexec_open_mpi_places_tasks_per_node_from_the_pbs_nodefile(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    env = {**fake_env, "PBS_NODEFILE": nodefile(tmp_path, "n1", "n1", "n2", "n2", "n3", "n3")}
    result = run_text(MpiExecLauncher()(RECORD, 3, 2), env, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "OMPI_COMM_WORLD_RANK") == list(range(6))
    assert per_node(found) == {"n1": 3, "n2": 3}
    [argv] = fake_calls(fake_log, "mpiexec")[1:]  # the first call is --version
    assert argv[:4] == ["-n", "6", "--bind-to", "none"]
    assert "-ppn" not in argv
    assert list((tmp_path / "tmp").iterdir()) == []  # the hostfile is gone


def test_mpiexec_mpich_uses_ppn_and_the_slurm_nodes(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    env = {**fake_env, "FAKE_MPI_FLAVOR": "mpich", "SLURM_JOB_NODELIST": "c[1-2]"}
    result = run_text(MpiExecLauncher(bind_cmd="")(RECORD, 2, 2), env, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "PMI_RANK") == [0, 1, 2, 3]
    assert per_node(found) == {"c1": 2, "c2": 2}
    argv = fake_calls(fake_log, "mpiexec")[-1]
    assert argv[:2] == ["-n", "4"] and argv[4:6] == ["-ppn", "2"]
    assert "--bind-to" not in argv


def test_mpiexec_leaves_ppn_to_the_overrides(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    env = {**fake_env, "FAKE_MPI_FLAVOR": "mpich", "PBS_NODEFILE": nodefile(tmp_path, "a", "b")}
    result = run_text(MpiExecLauncher(overrides="--ppn 1")(RECORD, 1, 2), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert per_node(copies(out)) == {"a": 1, "b": 1}
    argv = fake_calls(fake_log, "mpiexec")[-1]
    assert argv.count("--ppn") == 1 and "-ppn" not in argv


def test_mpiexec_outside_a_job_runs_everything_here(out: Path, tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(MpiExecLauncher()(RECORD, 2, 2), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert per_node(copies(out)) == {"localhost": 4}


def test_mpiexec_needs_enough_nodes(tmp_path: Path, fake_env: dict[str, str]) -> None:
    env = {**fake_env, "PBS_NODEFILE": nodefile(tmp_path, "only")}
    result = run_text(MpiExecLauncher()(RECORD, 1, 2), env, tmp_path)
    assert result.returncode == 1
    assert "MpiExecLauncher: the block needs 2 nodes, this job has 1: only" in result.stderr


def test_mpiexec_reports_an_unreadable_nodefile(tmp_path: Path, fake_env: dict[str, str]) -> None:
    result = run_text(MpiExecLauncher()(RECORD, 1, 1), {**fake_env, "PBS_NODEFILE": "/nonexistent"}, tmp_path)
    assert result.returncode == 1
    assert "cannot list the nodes of this job" in result.stderr


def test_mpirun_uses_np_overrides_and_bash_location(
    out: Path, tmp_path: Path, fake_env: dict[str, str], fake_log: Path
) -> None:
    bash = tmp_path / "my bash"  # a space in the path: it must be quoted
    bash.write_text('#!/bin/sh\ntouch "$FLOWLIB_TEST_OUT/marker.$$"\nexec /bin/bash "$@"\n')
    bash.chmod(0o755)
    launcher = MpiRunLauncher(bash_location=str(bash), overrides="--oversubscribe")
    result = run_text(launcher(RECORD, 3, 2), fake_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ranks(copies(out), "OMPI_COMM_WORLD_RANK") == list(range(6))
    assert len(list(out.glob("marker.*"))) == 6
    assert fake_calls(fake_log, "mpirun")[0][:4] == ["-np", "6", "--oversubscribe", str(bash)]


def test_mpirun_passes_on_a_failure(tmp_path: Path, fake_env: dict[str, str]) -> None:
    text = MpiRunLauncher(debug=False)("exit 9", 1, 1)
    assert run_text(text, fake_env, tmp_path).returncode == 9


# ---------------------------------------------------------------- the nasty command, through every fake


FAKE_CASES: dict[str, tuple[Launcher, int, int, dict[str, str]]] = {
    "simple": (SimpleLauncher(), 1, 1, {}),
    "single_node": (SingleNodeLauncher(), 2, 1, {}),
    "srun": (SrunLauncher(), 2, 2, {"SLURM_JOB_NODELIST": "n[1-2]"}),
    "srun_mpi": (SrunMPILauncher(), 2, 2, {"SLURM_JOB_NODELIST": "n[1-2]"}),
    "aprun": (AprunLauncher(), 2, 2, {}),
    "jsrun": (JsrunLauncher(), 2, 2, {}),
    "mpiexec": (MpiExecLauncher(), 2, 1, {}),
    "mpiexec_mpich": (MpiExecLauncher(), 2, 1, {"FAKE_MPI_FLAVOR": "mpich"}),
    "mpirun": (MpiRunLauncher(overrides="--oversubscribe"), 2, 2, {}),
}


@pytest.mark.parametrize("case", sorted(FAKE_CASES))
def test_a_nasty_command_arrives_unchanged(case: str, out: Path, tmp_path: Path, fake_env: dict[str, str]) -> None:
    launcher, tasks_per_node, nodes_per_block, extra = FAKE_CASES[case]
    expected = tasks_per_node * nodes_per_block if case != "simple" else 1
    result = run_text(launcher(NASTY, tasks_per_node, nodes_per_block), {**fake_env, **extra}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert nasty_outputs(out) == [NASTY_OUTPUT] * expected


# ---------------------------------------------------------------- real tools


@pytest.fixture(scope="session")
def launcher_tools() -> None:
    """Install Open MPI and GNU parallel when running as root (idempotent, fast when present)."""
    if not IS_ROOT:
        return  # tests of tools that are missing skip themselves
    try:
        subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=50, check=True)
    except subprocess.CalledProcessError as error:
        logging.getLogger(__name__).warning("%s failed: %s", INSTALL_SCRIPT, error.stderr)
    except subprocess.TimeoutExpired:
        logging.getLogger(__name__).warning("%s did not finish in 50 s", INSTALL_SCRIPT)


def require(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (tests/services/install-launcher-tools.sh installs it, as root)")


@pytest.fixture
def real_env(launcher_tools: None, out: Path, tmp_path: Path) -> dict[str, str]:
    """The real tools on PATH (no fakes), outside any batch job; Open MPI allowed to run as root."""
    (tmp_path / "tmp").mkdir()
    return base_env(
        out, fakes=False, TMPDIR=str(tmp_path / "tmp"), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1"
    )


@pytest.fixture
def open_mpi(real_env: dict[str, str]) -> dict[str, str]:
    require("mpiexec", "mpirun")
    version = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, env=real_env, check=False)
    if "Open MPI" not in version.stdout and "OpenRTE" not in version.stdout:
        pytest.skip(f"mpiexec is not Open MPI: {version.stdout.strip()[:80]}")
    return real_env


def test_real_open_mpi_mpiexec_outside_a_job(out: Path, tmp_path: Path, open_mpi: dict[str, str]) -> None:
    result = run_text(MpiExecLauncher()(RECORD, 3, 1), open_mpi, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "OMPI_COMM_WORLD_RANK") == [0, 1, 2]
    assert {env["OMPI_COMM_WORLD_SIZE"] for env in found} == {"3"}
    assert list((tmp_path / "tmp").iterdir()) == []


def test_real_open_mpi_mpiexec_with_this_host_in_the_nodefile(
    out: Path, tmp_path: Path, open_mpi: dict[str, str]
) -> None:
    # More copies than this machine has cores: the hostfile's slots=N makes room for them.
    host = os.uname().nodename
    tasks = (os.cpu_count() or 1) + 2
    env = {**open_mpi, "PBS_NODEFILE": nodefile(tmp_path, host, host)}
    result = run_text(MpiExecLauncher(debug=False)(RECORD, tasks, 1), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ranks(copies(out), "OMPI_COMM_WORLD_LOCAL_RANK") == list(range(tasks))


def test_real_open_mpi_mpirun(out: Path, tmp_path: Path, open_mpi: dict[str, str]) -> None:
    result = run_text(MpiRunLauncher(overrides="--oversubscribe")(RECORD, 2, 2), open_mpi, tmp_path)
    assert result.returncode == 0, result.stderr
    assert ranks(copies(out), "OMPI_COMM_WORLD_RANK") == [0, 1, 2, 3]


def test_real_open_mpi_passes_on_a_failure(tmp_path: Path, open_mpi: dict[str, str]) -> None:
    text = MpiExecLauncher(debug=False)('[ "$OMPI_COMM_WORLD_RANK" != 1 ] || exit 6', 2, 1)
    assert run_text(text, open_mpi, tmp_path).returncode == 6


@pytest.mark.parametrize("launcher", [MpiExecLauncher(), MpiRunLauncher(overrides="--oversubscribe")], ids=repr)
def test_real_open_mpi_nasty_command(launcher: Launcher, out: Path, tmp_path: Path, open_mpi: dict[str, str]) -> None:
    result = run_text(launcher(NASTY, 2, 1), open_mpi, tmp_path)
    assert result.returncode == 0, result.stderr
    assert nasty_outputs(out) == [NASTY_OUTPUT] * 2


@pytest.fixture
def gnu_parallel(real_env: dict[str, str]) -> dict[str, str]:
    require("parallel")
    version = subprocess.run(["parallel", "--version"], capture_output=True, text=True, env=real_env, check=False)
    if "GNU parallel" not in version.stdout:
        pytest.skip("the parallel on PATH is not GNU parallel")
    return real_env


def test_real_gnu_parallel_outside_a_job(out: Path, tmp_path: Path, gnu_parallel: dict[str, str]) -> None:
    result = run_text(GnuParallelLauncher()(RECORD, 3, 1), gnu_parallel, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "PARALLEL_SEQ") == [1, 2, 3]
    assert {env["PARALLEL_SSHLOGIN"] for env in found} == {":"}
    assert list((tmp_path / "tmp").iterdir()) == []


def test_real_gnu_parallel_runs_this_host_without_ssh(out: Path, tmp_path: Path, gnu_parallel: dict[str, str]) -> None:
    host = os.uname().nodename
    env = {**gnu_parallel, "PBS_NODEFILE": nodefile(tmp_path, host, host, host)}
    result = run_text(GnuParallelLauncher()(RECORD, 2, 1), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert {env["PARALLEL_SSHLOGIN"] for env in copies(out)} == {":"}


@pytest.fixture(params=["/bin/bash", "/bin/sh", None], ids=["SHELL=bash", "SHELL=sh", "SHELL-unset"])
def parallel_over_fake_ssh(
    gnu_parallel: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> dict[str, str]:
    """Real GNU parallel, whose ssh is tests/fakebin/ssh: 'remote' commands run here, quoted as over ssh.

    The 'remote' $SHELL varies: GNU parallel runs remote copies with it unless told otherwise, and a
    CI machine without SHELL once made every copy vanish with exit status 0.
    """
    env = {**gnu_parallel, "PARALLEL_SSH": str(FAKEBIN / "ssh"), "FAKEBIN_PYTHON": sys.executable}
    env.pop("SHELL", None)
    if request.param is not None:
        env["SHELL"] = request.param
    env["PBS_NODEFILE"] = nodefile(tmp_path, "nodeA", "nodeA", "nodeB", "nodeB", "nodeC")
    return env


def test_real_gnu_parallel_over_ssh_places_tasks_per_node(
    out: Path, tmp_path: Path, parallel_over_fake_ssh: dict[str, str]
) -> None:
    result = run_text(GnuParallelLauncher()(RECORD, 2, 2), parallel_over_fake_ssh, tmp_path)
    assert result.returncode == 0, result.stderr
    found = copies(out)
    assert ranks(found, "PARALLEL_SEQ") == [1, 2, 3, 4]
    assert per_node(found) == {"nodeA": 2, "nodeB": 2}
    assert {env["PWD"] for env in found} == {str(tmp_path)}  # --workdir .


def test_real_gnu_parallel_over_ssh_nasty_command(
    out: Path, tmp_path: Path, parallel_over_fake_ssh: dict[str, str]
) -> None:
    result = run_text(GnuParallelLauncher()(NASTY, 1, 2), parallel_over_fake_ssh, tmp_path)
    assert result.returncode == 0, result.stderr
    assert nasty_outputs(out) == [NASTY_OUTPUT] * 2


def test_real_gnu_parallel_exit_status_counts_failures(tmp_path: Path, gnu_parallel: dict[str, str]) -> None:
    text = GnuParallelLauncher(debug=False)('[ "$PARALLEL_SEQ" -gt 2 ] || exit 1', 4, 1)
    assert run_text(text, gnu_parallel, tmp_path).returncode == 2


# ---------------------------------------------------------------- real Slurm


@pytest.fixture
def slurm(out: Path, tmp_path: Path) -> Iterator[Callable[[str, int], tuple[int, str]]]:
    """Run text as the script of a real one-node Slurm job (sbatch --wait); give (exit status, output)."""
    require("sinfo", "sbatch", "srun", "scancel")
    probe = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=10, check=False)
    if probe.returncode != 0 or not probe.stdout.strip():
        pytest.skip(f"no Slurm cluster answers sinfo ({probe.stderr.strip()[:100]}); see tests/services/slurm-up.sh")
    env = base_env(out, fakes=False)
    name = f"flowlib-launcher-test-{uuid.uuid4().hex[:10]}"

    def run(text: str, tasks: int) -> tuple[int, str]:
        script = tmp_path / "job.sh"
        script.write_text(f"#!/bin/bash\n{text}\n")
        output = tmp_path / "job.out"
        command = [
            "sbatch", "--wait", "--parsable", f"--job-name={name}", "--nodes=1", f"--ntasks-per-node={tasks}",
            "--overcommit", "--time=2", f"--output={output}", str(script),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=45)
        except subprocess.TimeoutExpired:
            so_far = output.read_text() if output.exists() else "(no output yet)"
            pytest.fail(f"the Slurm job did not finish within 45 s (is the cluster busy?); its output:\n{so_far}")
        return done.returncode, f"{done.stderr}\n{output.read_text() if output.exists() else ''}"

    yield run
    subprocess.run(["scancel", f"--name={name}"], capture_output=True, timeout=10, check=False)


def test_real_srun(out: Path, slurm: Callable[[str, int], tuple[int, str]]) -> None:
    status, output = slurm(SrunLauncher()(RECORD, 2, 1), 2)
    assert status == 0, output
    found = copies(out)
    assert ranks(found, "SLURM_PROCID") == [0, 1]
    assert {env["SLURM_NTASKS"] for env in found} == {"2"}


def test_real_srun_nasty_command(out: Path, slurm: Callable[[str, int], tuple[int, str]]) -> None:
    status, output = slurm(SrunLauncher()(NASTY, 2, 1), 2)
    assert status == 0, output
    assert nasty_outputs(out) == [NASTY_OUTPUT] * 2


def test_real_srun_mpi_pool_can_start_an_app_step(out: Path, slurm: Callable[[str, int], tuple[int, str]]) -> None:
    # The "pool" (one per node) starts an MPI-style app step of 2 tasks on the job's 2 CPUs;
    # without --overlap on the pool's step this app step would wait behind it forever.
    pool = RECORD + "\nsrun --ntasks=2 bash -c 'touch \"$FLOWLIB_TEST_OUT/app.$SLURM_PROCID\"'"
    status, output = slurm(SrunMPILauncher()(pool, 1, 1), 2)
    assert status == 0, output
    assert len(copies(out)) == 1
    assert sorted(path.name for path in out.glob("app.*")) == ["app.0", "app.1"]
