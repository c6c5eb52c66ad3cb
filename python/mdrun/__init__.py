"""mdrun in Python.

    from mdrun import Calculator
    atoms.calc = Calculator("potentials/water-schnet-mcgm-soft")

Potential evaluates a model on arrays (one structure or a batch); run() and train() drive the
mdrun command. Errors raise MdrunError with mdrun's message.
"""
from ._native import MdrunError
from .commands import mdrun, run, train
from .potential import Evaluation, Potential


def __getattr__(name):
    # The calculator needs ASE; import it only when asked for.
    if name == "Calculator":
        from .calculator import Calculator

        return Calculator
    raise AttributeError(name)


def version() -> str:
    from . import _native

    return _native.lib().mdrun_version().decode()


__all__ = ["Calculator", "Evaluation", "MdrunError", "Potential", "mdrun", "run", "train", "version"]
