"""What the fake launcher tools in this directory share (used by tests/test_launchers.py).

Each fake accepts the real tool's documented options that flowlib's launchers and
tests use, and rejects any other option, as the real tools do. It starts the
copies as local processes (every "node" is this machine) with the environment
the real tool gives them (rank variables), plus ``FAKE_NODE``, the name of the
node the copy stands for. When ``FAKE_LAUNCH_LOG`` is set, it appends
``{"tool": ..., "argv": [...]}`` to that file as one JSON line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

Env = dict[str, str]


def log_call(tool: str, argv: Sequence[str]) -> None:
    path = os.environ.get("FAKE_LAUNCH_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "argv": list(argv)}) + "\n")


def fail(tool: str, message: str, status: int = 1) -> NoReturn:
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(status)


def parse(tool: str, argv: Sequence[str], spec: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Options before the program, per ``spec`` (option -> "flag" or "value"); return (options, program).

    Accepts ``--opt value``, ``--opt=value`` and ``-o value``; a repeated option keeps
    every value. The first word that is not an option starts the program.
    """
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        word = argv[i]
        name, eq, inline = word.partition("=")
        kind = spec.get(name) if eq else spec.get(word)
        if kind is None:
            fail(tool, f"unrecognized option '{word}'")
        if kind == "flag":
            options.setdefault(name, []).append("")
            i += 1
        elif eq:
            options.setdefault(name, []).append(inline)
            i += 1
        else:
            if i + 1 >= len(argv):
                fail(tool, f"option '{word}' requires a value")
            options.setdefault(word, []).append(argv[i + 1])
            i += 2
    if argv[i : i + 1] == ["--"]:
        i += 1
    if i >= len(argv):
        fail(tool, "no program given")
    return options, list(argv[i:])


def option(options: dict[str, list[str]], *names: str) -> str | None:
    """The last value given under any of ``names`` (aliases), or None."""
    for name in names:
        if name in options:
            return options[name][-1]
    return None


def positive(tool: str, name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        fail(tool, f"invalid value for {name}: {text!r}")
    return int(text)


def expand_hostlist(text: str) -> list[str]:
    """Slurm's hostlist syntax: ``n[01-03,7],gpu1`` -> n01 n02 n03 n7 gpu1."""
    hosts: list[str] = []
    for prefix, ranges, plain in re.findall(r"([^,\[]*)\[([^\]]*)\]|([^,\[\]]+)", text):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            width = len(low)
            for number in range(int(low), int(high or low) + 1):
                hosts.append(f"{prefix}{number:0{width}d}")
    return hosts


def allocation_nodes() -> list[str]:
    """The nodes of the surrounding (fake) Slurm or PBS job; empty outside one."""
    listed = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if listed:
        return expand_hostlist(listed)
    nodefile = os.environ.get("PBS_NODEFILE")
    if nodefile:
        with open(nodefile, encoding="utf-8") as lines:
            return list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))
    return []


def run_copies(copies: Sequence[Env], program: Sequence[str], label: bool = False) -> int:
    """Run ``program`` once per entry of ``copies`` (extra environment), all at once.

    Returns the highest exit status (128+N for a copy killed by signal N). A TERM
    or INT sent to the fake is passed on to the copies as TERM. With ``label``,
    each output line is prefixed by the copy's index and ": ", as ``srun -l`` does.
    """
    out_lock = threading.Lock()
    processes: list[subprocess.Popen[bytes]] = []
    pumps: list[threading.Thread] = []

    def forward(signum: int, frame: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index, extra in enumerate(copies):
        process = subprocess.Popen(
            list(program), env={**os.environ, **extra}, stdout=subprocess.PIPE if label else None
        )
        processes.append(process)
        if label:
            pump = threading.Thread(target=_prefix_lines, args=(process, f"{index}: ".encode(), out_lock))
            pump.start()
            pumps.append(pump)
    worst = 0
    for process in processes:
        status = process.wait()
        worst = max(worst, 128 - status if status < 0 else status)
    for pump in pumps:
        pump.join()
    return worst


def _prefix_lines(process: subprocess.Popen[bytes], prefix: bytes, lock: threading.Lock) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        with lock:
            sys.stdout.buffer.write(prefix + line)
            sys.stdout.buffer.flush()


def block_placement(count: int, nodes: Sequence[str], per_node: int) -> list[str]:
    """Copy i -> node i // per_node (the "block" distribution), wrapping around the nodes."""
    return [nodes[(i // per_node) % len(nodes)] for i in range(count)]


def local_ranks(placement: Sequence[str]) -> list[int]:
    seen: dict[str, int] = {}
    ranks = []
    for node in placement:
        ranks.append(seen.get(node, 0))
        seen[node] = ranks[-1] + 1
    return ranks
