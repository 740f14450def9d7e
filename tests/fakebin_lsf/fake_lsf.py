"""A stand-in for IBM Spectrum LSF's bsub / bjobs / bkill, for flowlib's LSFProvider tests.

LSF cannot run on flowlib's CI machines. This fake prints what the LSF command
reference documents for these commands and runs each job as a real local process:

* ``bsub SCRIPT`` or ``bsub < SCRIPT``: reads the ``#BSUB`` lines (``-J -o -e -q -P -W
  -nnodes -n -R``), starts ``bash SCRIPT`` in a session of its own with ``LSB_JOBID``
  set and stdout/stderr appended to the ``-o``/``-e`` files, and prints
  ``Job <ID> is submitted to queue <QUEUE>.``. An unknown queue gives
  ``QUEUE: No such queue. Job not submitted.`` and exit code 255; a ``#BSUB -W`` that
  is not ``[hours:]minutes`` gives ``-W: Bad RUNLIMIT specification. Job not submitted.``.
* ``bjobs [-a] [-noheader] [-o "FIELDS [delimiter='C']"] ID...``: one line per job with
  the fields asked for (``jobid stat exit_code exit_reason``; ``-`` when empty).
  A job past its run limit is killed and shows ``EXIT`` with ``TERM_RUNLIMIT: job
  killed after reaching LSF run time limit``; a killed one ``TERM_OWNER: job killed by
  owner``. Unknown ids: ``Job <ID> is not found`` on stderr, exit code 255.
* ``bkill ID...``: ``Job <ID> is being terminated``; ``Job <ID>: Job has already
  finished``; ``Job <ID>: No matching job found`` (stderr, exit code 255).

Environment: ``FAKE_LSF_DIR`` (required: job records), ``FAKE_LSF_QUEUES`` (known
queues, default ``normal,debug``; the first is the default queue),
``FAKE_LSF_SECONDS_PER_MINUTE`` (default 60: how long a ``-W`` minute lasts here),
``FAKE_LSF_GARBAGE=1`` (bjobs answers junk), ``FAKE_LSF_LOG`` (a file every command
line is appended to).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

STATE = os.environ["FAKE_LSF_DIR"]


def path(job_id: str, suffix: str = ".json") -> str:
    return os.path.join(STATE, f"{job_id}{suffix}")


def load(job_id: str) -> dict | None:
    try:
        with open(path(job_id)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save(job: dict) -> None:
    with open(path(job["id"], ".tmp"), "w") as f:
        json.dump(job, f)
    os.replace(path(job["id"], ".tmp"), path(job["id"]))


def new_id() -> str:
    counter = os.path.join(STATE, "counter")
    value = int(open(counter).read()) + 1 if os.path.exists(counter) else 1000
    with open(counter, "w") as f:
        f.write(str(value))
    return str(value)


def bsub(args: list[str]) -> int:
    if args:
        script = args[-1]
        try:
            text = open(script).read()
        except OSError as e:
            print(f"{script}: {e.strerror}. Job not submitted.", file=sys.stderr)
            return 255
    else:  # bsub < script: the script arrives on standard input
        text = sys.stdin.read()
        script = path(f"stdin-{os.getpid()}", ".sh")
        with open(script, "w") as f:
            f.write(text)
    options = dict(re.findall(r"^#BSUB -(\w+) (.*)$", text, re.MULTILINE))
    queues = os.environ.get("FAKE_LSF_QUEUES", "normal,debug").split(",")
    queue = options.get("q", queues[0])
    if queue not in queues:
        print(f"{queue}: No such queue. Job not submitted.", file=sys.stderr)
        return 255
    limit = re.fullmatch(r"(?:(\d+):)?(\d+)", options.get("W", "60"))
    if limit is None:
        print("-W: Bad RUNLIMIT specification. Job not submitted.", file=sys.stderr)
        return 255
    minutes = int(limit.group(1) or 0) * 60 + int(limit.group(2))
    seconds = minutes * float(os.environ.get("FAKE_LSF_SECONDS_PER_MINUTE", "60"))
    job_id = new_id()
    env = dict(os.environ, LSB_JOBID=job_id, LSB_JOBNAME=options.get("J", script))
    runner = 'timeout -s TERM "$1" bash "$0"; echo $? > "$2"'
    with open(options.get("o", os.devnull), "a") as out, open(options.get("e", os.devnull), "a") as err:
        proc = subprocess.Popen(
            ["bash", "-c", runner, script, str(seconds), path(job_id, ".exit")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
    save({"id": job_id, "pid": proc.pid, "queue": queue, "killed": False, "options": options})
    print(f"Job <{job_id}> is submitted to queue <{queue}>.")
    return 0


def outcome(job: dict) -> tuple[str, str, str]:
    """(STAT, exit code, exit reason) of a job, '-' where LSF prints nothing."""
    exit_file = path(job["id"], ".exit")
    text = open(exit_file).read().strip() if os.path.exists(exit_file) else ""
    if text:
        code = int(text)
        if code == 0:
            return "DONE", "-", "-"
        if code == 124:  # timeout(1): the run limit was reached
            return "EXIT", "140", "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
        return "EXIT", str(code), "-"
    if job["killed"]:
        try:
            stat = open(f"/proc/{job['pid']}/stat").read().split()[2]
        except OSError:
            stat = "gone"
        if stat in ("gone", "Z"):
            return "EXIT", "143", "TERM_OWNER: job killed by owner"
    return "RUN", "-", "-"


def bjobs(args: list[str]) -> int:
    if os.environ.get("FAKE_LSF_GARBAGE") == "1":
        print("LSF is down for maintenance >>> 0x1f <<<")
        return 0
    fields, delimiter, ids, skip = ["jobid", "stat", "queue"], " ", [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "-o":
            spec = args[i + 1]
            found = re.search(r"delimiter='(.)'", spec)
            delimiter = found.group(1) if found else " "
            fields = [f for f in re.sub(r"delimiter='.'", "", spec).split()]
            skip = True
        elif not arg.startswith("-"):
            ids.append(arg)
    if "-noheader" not in args:
        print(delimiter.join(f.upper() for f in fields))
    rc = 0
    for job_id in ids:
        job = load(job_id)
        if job is None:
            print(f"Job <{job_id}> is not found", file=sys.stderr)
            rc = 255
            continue
        stat, code, reason = outcome(job)
        values = {"jobid": job_id, "stat": stat, "exit_code": code, "exit_reason": reason, "queue": job["queue"]}
        print(delimiter.join(values.get(f, "-") for f in fields))
    return rc


def kill_session(sid: int) -> None:
    """SIGTERM every process of the job's session (timeout(1) puts its child in a group of its own)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            try:
                os.kill(int(entry), signal.SIGTERM)
            except ProcessLookupError:
                pass


def bkill(args: list[str]) -> int:
    rc = 0
    for job_id in (a for a in args if not a.startswith("-")):
        job = load(job_id)
        if job is None:
            print(f"Job <{job_id}>: No matching job found", file=sys.stderr)
            rc = 255
        elif outcome(job)[0] != "RUN":
            print(f"Job <{job_id}>: Job has already finished", file=sys.stderr)
            rc = 255
        else:
            kill_session(job["pid"])
            job["killed"] = True
            save(job)
            print(f"Job <{job_id}> is being terminated")
    return rc


if __name__ == "__main__":
    if os.environ.get("FAKE_LSF_LOG"):
        with open(os.environ["FAKE_LSF_LOG"], "a") as log:
            log.write(" ".join(sys.argv[1:]) + "\n")
    command, arguments = sys.argv[1], sys.argv[2:]
    sys.exit({"bsub": bsub, "bjobs": bjobs, "bkill": bkill}[command](arguments))
