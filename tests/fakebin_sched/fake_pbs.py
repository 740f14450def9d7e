"""A small stand-in for PBS Pro and Torque's qsub / qstat / qdel, for flowlib's provider tests.

PBS Pro and Torque cannot run on flowlib's CI machines. This fake speaks the command
output that their documentation describes and runs each job as a real local process:

* ``qsub SCRIPT`` reads the ``#PBS -N/-o/-e/-q/-l walltime=`` directives, starts
  ``bash SCRIPT`` in a session of its own (stdout/stderr to the ``-o``/``-e`` paths,
  ``PBS_JOBID`` set) and prints the job id, ``SEQ.fakeserver``.
* ``qstat -f [-x] ID...`` prints each job in the full format (``Job Id:`` line, then
  indented ``key = value`` lines, long values wrapped onto tab-indented lines).
  PBS Pro shows finished jobs as ``F`` with ``Exit_status`` (only with ``-x``;
  without it: "Job has finished, use -x or -H"); Torque as ``C`` with
  ``exit_status``. An unknown id gives "qstat: Unknown Job Id ID" (PBS Pro) or
  "qstat: Unknown Job Id Error ID" (Torque) on stderr and exit code 153.
* ``qdel ID...`` sends SIGTERM to the job's process group; the job then finishes
  with exit status 271 (256 + SIGTERM), as both schedulers report it.

Environment: ``FAKE_PBS_DIR`` (required: where job records live), ``FAKE_PBS_FLAVOR``
(``pbspro`` | ``torque``), ``FAKE_PBS_QUEUES`` (comma-separated known queues, default
``workq,batch``), ``FAKE_PBS_GARBAGE=1`` (qstat prints junk).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

STATE = os.environ["FAKE_PBS_DIR"]
FLAVOR = os.environ.get("FAKE_PBS_FLAVOR", "pbspro")
SERVER = "fakeserver"


def record_path(seq: str) -> str:
    return os.path.join(STATE, f"{seq}.json")


def load(job_id: str) -> dict | None:
    seq = job_id.split(".", 1)[0]
    try:
        with open(record_path(seq)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save(job: dict) -> None:
    tmp = record_path(job["seq"]) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(job, f)
    os.replace(tmp, record_path(job["seq"]))


def next_seq() -> str:
    counter = os.path.join(STATE, "counter")
    value = int(open(counter).read()) + 1 if os.path.exists(counter) else 100
    with open(counter, "w") as f:
        f.write(str(value))
    return str(value)


def qsub(args: list[str]) -> int:
    if not args:
        print("usage: qsub [options] script", file=sys.stderr)
        return 2
    script = args[-1]
    try:
        text = open(script).read()
    except OSError as e:
        print(f"qsub: script file:: {e.strerror}", file=sys.stderr)
        return 1
    directives = dict(re.findall(r"^#PBS -(\w) (.*)$", text, re.MULTILINE))
    resources = re.findall(r"^#PBS -l (.*)$", text, re.MULTILINE)
    queues = os.environ.get("FAKE_PBS_QUEUES", "workq,batch").split(",")
    if "q" in directives and directives["q"] not in queues:
        message = (
            "qsub: Unknown queue"
            if FLAVOR == "pbspro"
            else "qsub: submit error (Unknown queue MSG=requested queue not found)"
        )
        print(message, file=sys.stderr)
        return 170
    seq = next_seq()
    job_id = f"{seq}.{SERVER}"
    walltime = next((r.split("=", 1)[1] for r in resources if r.startswith("walltime=")), "01:00:00")
    exit_file = os.path.join(STATE, f"{seq}.exit")
    env = dict(os.environ, PBS_JOBID=job_id, PBS_JOBNAME=directives.get("N", "STDIN"))
    with open(directives.get("o", os.devnull), "w") as out, open(directives.get("e", os.devnull), "w") as err:
        proc = subprocess.Popen(
            ["bash", "-c", 'bash "$0"; echo $? > "$1"', script, exit_file],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    save(
        {
            "seq": seq,
            "id": job_id,
            "name": directives.get("N", "STDIN"),
            "pid": proc.pid,
            "queue": directives.get("q", queues[0]),
            "walltime": walltime,
            "start": time.time(),
            "deleted": False,
            "output": directives.get("o", ""),
            "error": directives.get("e", ""),
        }
    )
    print(job_id)
    return 0


def finished(job: dict) -> int | None:
    """The exit status if the job has ended, else None."""
    exit_file = os.path.join(STATE, f"{job['seq']}.exit")
    if os.path.exists(exit_file):
        text = open(exit_file).read().strip()
        if text:
            return int(text)
    if job["deleted"]:
        try:
            os.killpg(job["pid"], 0)
            state = open(f"/proc/{job['pid']}/stat").read().split()[2]
            if state == "Z":
                return 271
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            return 271
    return None


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def show(job: dict, code: int | None) -> str:
    pbspro = FLAVOR == "pbspro"
    if code is None:
        letter = "R"
    else:
        letter = "F" if pbspro else "C"
    lines = [
        f"Job Id: {job['id']}",
        f"    Job_Name = {job['name']}",
        f"    Job_Owner = flowtest@{SERVER}",
        f"    job_state = {letter}",
        f"    queue = {job['queue']}",
        f"    server = {SERVER}",
        f"    Error_Path = {SERVER}:{job['error']}",
        f"    Output_Path = {SERVER}:{job['output']}",
        f"    Resource_List.walltime = {job['walltime']}",
        f"    resources_used.walltime = {hms(time.time() - job['start'])}",
        "    Variable_List = PBS_O_HOME=/home/flowtest,PBS_O_LOGNAME=flowtest,PBS_O_PATH=/usr/local/sbin:/usr/lo",
        "\tcal/bin:/usr/sbin:/usr/bin:/sbin:/bin,PBS_O_SHELL=/bin/bash,PBS_O_WORKDIR=/home/flowtest",
    ]
    if code is not None:
        lines.append(f"    {'Exit_status' if pbspro else 'exit_status'} = {code}")
    if pbspro and code is None:
        lines.append("    comment = Job run at Sat Nov 21 at 10:00 on (fakenode:ncpus=1)")
    return "\n".join(lines) + "\n"


def qstat(args: list[str]) -> int:
    if os.environ.get("FAKE_PBS_GARBAGE") == "1":
        print("@@@ this is not what qstat prints @@@")
        return 0
    history = "-x" in args
    ids = [a for a in args if not a.startswith("-")]
    rc = 0
    blocks = []
    for job_id in ids:
        job = load(job_id)
        if job is None:
            suffix = "Error " if FLAVOR == "torque" else ""
            print(f"qstat: Unknown Job Id {suffix}{job_id}", file=sys.stderr)
            rc = 153
            continue
        code = finished(job)
        if FLAVOR == "pbspro" and code is not None and not history:
            print(
                f"qstat: {job_id} Job has finished, use -x or -H to obtain historical job information", file=sys.stderr
            )
            rc = 35
            continue
        blocks.append(show(job, code))
    sys.stdout.write("\n".join(blocks))
    return rc


def qdel(args: list[str]) -> int:
    rc = 0
    for job_id in (a for a in args if not a.startswith("-")):
        job = load(job_id)
        if job is None or finished(job) is not None:
            print(f"qdel: Unknown Job Id {job_id}", file=sys.stderr)
            rc = 153
            continue
        try:
            os.killpg(job["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        job["deleted"] = True
        save(job)
    return rc


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    sys.exit({"qsub": qsub, "qstat": qstat, "qdel": qdel}[command](arguments))
