"""Fake ssh for GNU parallel (PARALLEL_SSH=tests/fakebin/ssh): `ssh [options] host [--] command...`
joins the command words with spaces and runs them with `bash -c`, as sshd hands them to the
remote user's shell, here on this machine, with FAKE_NODE=host. Options as in ssh(1).
"""

from __future__ import annotations

import os
import sys

import _fakelib as fake

WITH_VALUE = set("BbcDEeFIiJLlmOoPpQRSWw")


def ssh(argv: list[str]) -> int:
    fake.log_call("ssh", argv)
    args = list(argv)
    i = 0
    host = None
    while i < len(args) and host is None:
        word = args[i]
        if word == "--":
            i += 1
        elif word.startswith("-") and len(word) > 1:
            i += 2 if len(word) == 2 and word[1] in WITH_VALUE else 1
        else:
            host = word
            i += 1
    command = args[i:]
    if command[:1] == ["--"]:
        command = command[1:]
    if host is None or not command:
        fake.fail("ssh", f"this fake needs a host and a command, got {args}")
    os.execve("/bin/bash", ["bash", "-c", " ".join(command)], {**os.environ, "FAKE_NODE": host})


MAINS = {"ssh": ssh}

if __name__ == "__main__":
    sys.exit(MAINS[sys.argv[1]](sys.argv[2:]))
