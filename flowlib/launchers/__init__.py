"""Launchers: wrap a worker command so that it starts on every node of a block.

A launcher is a small callable, ``launcher(command, tasks_per_node,
nodes_per_block) -> str``, that returns shell text; a provider puts that text
into the job it submits. See ``docs/launchers.rst`` for which one to use where.
"""

from flowlib.launchers.aprun import AprunLauncher
from flowlib.launchers.base import Launcher
from flowlib.launchers.gnu_parallel import GnuParallelLauncher
from flowlib.launchers.jsrun import JsrunLauncher
from flowlib.launchers.mpi import MpiExecLauncher, MpiRunLauncher
from flowlib.launchers.simple import SimpleLauncher
from flowlib.launchers.single_node import SingleNodeLauncher
from flowlib.launchers.slurm import SrunLauncher, SrunMPILauncher
from flowlib.launchers.wrapped import WrappedLauncher

__all__ = [
    "AprunLauncher",
    "GnuParallelLauncher",
    "JsrunLauncher",
    "Launcher",
    "MpiExecLauncher",
    "MpiRunLauncher",
    "SimpleLauncher",
    "SingleNodeLauncher",
    "SrunLauncher",
    "SrunMPILauncher",
    "WrappedLauncher",
]
