"""A stand-in for HTCondor's condor_submit / condor_q / condor_history / condor_rm, for flowlib's tests.

HTCondor's daemons cannot run on flowlib's CI machines (the PyPI wheel has bindings
only). This fake follows what the HTCondor manual documents and runs each job as a
real local process:

* ``condor_submit FILE`` reads a submit description (``key = value`` lines, ``#``
  comments, one ``queue [N]``), parses ``arguments`` and ``environment`` in the
  "new syntax" (the whole value in double quotes, whitespace between items, single
  quotes group, a quote is escaped by doubling it), copies ``transfer_input_files``
  into a scratch directory and runs ``executable arguments`` there with only the
  ``environment`` variables (plus PATH and HOME), stdout/stderr to ``output``/``error``.
  It prints ``Submitting job(s).`` and ``N job(s) submitted to cluster C.``.
  A missing input file puts the job on hold (JobStatus 5, with a HoldReason); a
  ``requirements`` naming ``FakeUnsatisfiable`` leaves it idle (1) for ever; the
  seconds in ``periodic_remove = ... > SECONDS)`` (times ``FAKE_CONDOR_SECONDS_SCALE``)
  bound its run time, after which it is removed (3) with a PeriodicRemove RemoveReason.
* ``condor_q C... -af:jt ATTR...`` prints ``C.0<TAB>value...`` for jobs still in the
  queue (idle, running, held); completed (4) and removed (3) jobs have left it and
  are shown by ``condor_history C... -af:jt ATTR... [-limit N]``. Undefined
  attributes print ``undefined``.
* ``condor_rm C...`` prints ``All jobs in cluster C have been marked for removal``, or
  ``Couldn't find/remove all jobs in cluster C`` (exit code 1).

Environment: ``FAKE_CONDOR_DIR`` (required), ``FAKE_CONDOR_SECONDS_SCALE`` (default 1),
``FAKE_CONDOR_GARBAGE=1`` (condor_q answers junk), ``FAKE_CONDOR_SCHEDD_DOWN=1``
(condor_q cannot reach the schedd).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

STATE = os.environ["FAKE_CONDOR_DIR"]


def path(cluster: str, suffix: str = ".json") -> str:
    return os.path.join(STATE, f"{cluster}{suffix}")


def load(cluster: str) -> dict | None:
    try:
        with open(path(cluster)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def save(job: dict) -> None:
    with open(path(job["cluster"], ".tmp"), "w") as f:
        json.dump(job, f)
    os.replace(path(job["cluster"], ".tmp"), path(job["cluster"]))


def split_new_syntax(value: str) -> list[str]:
    """The items of a double-quoted new-syntax value (arguments, environment)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError(f"not in the new syntax (double quotes around the whole value): {value!r}")
    body, items, current, quoted, started, i = value[1:-1], [], [], False, False, 0
    while i < len(body):
        char, following = body[i], body[i + 1 : i + 2]
        if char == '"' and following == '"':
            current.append('"')
            started, i = True, i + 2
        elif char == "'" and quoted and following == "'":
            current.append("'")
            i += 2
        elif char == "'":
            quoted, started, i = not quoted, True, i + 1
        elif char.isspace() and not quoted:
            if started:
                items.append("".join(current))
            current, started, i = [], False, i + 1
        else:
            current.append(char)
            started, i = True, i + 1
    if quoted:
        raise ValueError(f"unbalanced single quote in {value!r}")
    if started:
        items.append("".join(current))
    return items


def parse_description(text: str) -> tuple[dict[str, str], int]:
    commands, count = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        queue = re.fullmatch(r"queue(?:\s+(\d+))?", line, re.IGNORECASE)
        if queue:
            count = int(queue.group(1) or 1)
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"Illegal submit description line: {line}")
        commands[key.strip().lower()] = value.strip()
    if count is None:
        raise ValueError("no queue statement")
    return commands, count


def condor_submit(args: list[str]) -> int:
    try:
        commands, count = parse_description(open(args[-1]).read())
        arguments = split_new_syntax(commands.get("arguments", '""'))
        environment = dict(item.split("=", 1) for item in split_new_syntax(commands.get("environment", '""')))
    except (OSError, ValueError, IndexError) as e:
        print(
            f"ERROR: on Line 0 of submit file: {e}\nSubmitting job(s)\nERROR: Failed to parse command file",
            file=sys.stderr,
        )
        return 1
    if count != 1:
        print("ERROR: the fake handles one job per cluster", file=sys.stderr)
        return 1
    counter = os.path.join(STATE, "counter")
    cluster = str(int(open(counter).read()) + 1 if os.path.exists(counter) else 500)
    with open(counter, "w") as f:
        f.write(cluster)
    scratch = path(cluster, ".scratch")
    os.makedirs(scratch)
    job = {"cluster": cluster, "pid": None, "status": 1, "hold": None, "remove": None}
    initial = commands.get("initialdir", os.getcwd())
    for name in filter(None, (n.strip() for n in commands.get("transfer_input_files", "").split(","))):
        source = os.path.join(initial, name)
        if not os.path.exists(source):
            job["status"] = 5
            job["hold"] = (
                f"Error from slot1@fakehost: STARTER failed to receive file {name}: "
                f"SHADOW failed to send file(s): error reading from {source}: (errno 2) No such file or directory"
            )
            break
        shutil.copy(source, scratch)
    limit = re.search(r">\s*(\d+)\s*\)*\s*$", commands.get("periodic_remove", ""))
    seconds = float(limit.group(1)) * float(os.environ.get("FAKE_CONDOR_SECONDS_SCALE", "1")) if limit else 1e6
    if job["status"] == 1 and "FakeUnsatisfiable" not in commands.get("requirements", ""):
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "_CONDOR_SCRATCH_DIR": scratch}
        env.update(environment)
        runner = ["bash", "-c", '"${@:2}"; echo $? > "$1"', "runner", path(cluster, ".exit")]
        command = ["timeout", "-s", "TERM", str(seconds), commands["executable"], *arguments]
        with open(commands.get("output", os.devnull), "w") as out, open(commands.get("error", os.devnull), "w") as err:
            proc = subprocess.Popen(
                runner + command,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        job.update(pid=proc.pid, status=2)
    save(job)
    if commands.get("log"):
        with open(commands["log"], "a") as log:
            log.write(f"000 ({int(cluster):03d}.000.000) Job submitted from host: <127.0.0.1:9618>\n...\n")
    print(f"Submitting job(s).\n1 job(s) submitted to cluster {cluster}.")
    return 0


def current(job: dict) -> dict:
    """The job's attributes now: JobStatus, ExitCode, HoldReason, RemoveReason."""
    attrs = {"JobStatus": job["status"], "ExitCode": None, "HoldReason": job["hold"], "RemoveReason": job["remove"]}
    exit_file = path(job["cluster"], ".exit")
    text = open(exit_file).read().strip() if os.path.exists(exit_file) else ""
    if job["status"] == 2 and text:
        code = int(text)
        if code == 124:
            attrs["JobStatus"] = 3
            attrs["RemoveReason"] = (
                "The job attribute PeriodicRemove expression '(JobStatus == 2) && ...' evaluated to TRUE"
            )
        else:
            attrs.update(JobStatus=4, ExitCode=code)
    return attrs


def show(args: list[str], in_queue: bool) -> int:
    if os.environ.get("FAKE_CONDOR_SCHEDD_DOWN") == "1":
        print("-- Failed to fetch ads from: <127.0.0.1:9618?addrs=127.0.0.1-9618> : fakehost", file=sys.stderr)
        print("CEDAR:6001:Failed to connect to <127.0.0.1:9618?addrs=127.0.0.1-9618>", file=sys.stderr)
        return 1
    if os.environ.get("FAKE_CONDOR_GARBAGE") == "1" and in_queue:
        print("** condor_q: the schedd says hello **")
        return 0
    split = args.index("-af:jt")
    ids, attributes = args[:split], [a for a in args[split + 1 :] if not a.startswith("-") and not a.isdigit()]
    for cluster in ids:
        job = load(cluster)
        if job is None:
            continue
        attrs = current(job)
        if (attrs["JobStatus"] in (3, 4)) == in_queue:
            continue
        values = ["undefined" if attrs.get(a) is None else str(attrs[a]) for a in attributes]
        print("\t".join([f"{cluster}.0", *values]))
    return 0


def kill_session(sid: int) -> None:
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[3]) == sid:
                os.kill(int(entry), signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue


def condor_rm(args: list[str]) -> int:
    rc = 0
    for cluster in args:
        job = load(cluster)
        if job is None or current(job)["JobStatus"] in (3, 4):
            print(f"Couldn't find/remove all jobs in cluster {cluster}", file=sys.stderr)
            rc = 1
            continue
        if job["pid"]:
            kill_session(job["pid"])
        job.update(status=3, remove="via condor_rm (by user flowtest)")
        save(job)
        print(f"All jobs in cluster {cluster} have been marked for removal")
    return rc


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    handlers = {
        "condor_submit": condor_submit,
        "condor_q": lambda a: show(a, in_queue=True),
        "condor_history": lambda a: show(a, in_queue=False),
        "condor_rm": condor_rm,
    }
    sys.exit(handlers[command](arguments))
