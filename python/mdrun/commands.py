"""The mdrun command from Python: `mdrun.run("system.toml")`, `mdrun.train(...)`.

They run the mdrun binary shipped with the package as a child process (so Ctrl-C, mdrun's
signal handling and its exit status behave as on the command line); a failure raises
MdrunError with mdrun's own error message.
"""
from __future__ import annotations

import os
import subprocess
from typing import Optional

from ._native import MdrunError, binary_path


def mdrun(*args: str, quiet: bool = False, cwd: "Optional[str | os.PathLike[str]]" = None) -> str:
    """Runs `mdrun ARGS...`; returns what it printed on stdout (also echoed unless quiet)."""
    proc = subprocess.Popen([str(binary_path()), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    stdout, stderr = proc.communicate()
    if not quiet:
        print(stdout, end="")
    if proc.returncode != 0:
        lines = [l for l in stderr.splitlines() if l.startswith("error:")]
        message = lines[-1][len("error:"):].strip() if lines else stderr.strip()
        raise MdrunError(message or f"mdrun {' '.join(map(str, args))} exited with status {proc.returncode}")
    return stdout


def run(input: "str | os.PathLike[str]", *, steps: Optional[int] = None, threads: Optional[int] = None, platform: Optional[str] = None, output_dir: "Optional[str | os.PathLike[str]]" = None, restart: "Optional[str | os.PathLike[str]]" = None, quiet: bool = False) -> str:
    """Runs a system.toml (or, for a LAMMPS deck, use mdrun("-in", "in.deck"))."""
    args = ["run", os.fspath(input)]
    for flag, value in (("--steps", steps), ("--threads", threads), ("--platform", platform), ("--output-dir", output_dir), ("--restart", restart)):
        if value is not None:
            args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    if quiet:
        args.append("--quiet")
    return mdrun(*args, quiet=quiet)


def train(config: "Optional[str | os.PathLike[str]]" = None, quiet: bool = False, **settings) -> str:
    """`mdrun train [config] --key value ...`: keyword arguments become flags (out="m" ->
    --out m; a True value is a bare flag)."""
    args = ["train"] + ([os.fspath(config)] if config is not None else [])
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    return mdrun(*args, quiet=quiet)
