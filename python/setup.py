"""Builds mdrun's shared library (the C ABI the package loads) and the mdrun binary with cargo,
from the repository this folder belongs to, and ships them inside the package (stripped).

`pip install ./python` runs this (MDRUN_PREBUILT=DIR: take both from DIR instead). The Rust build is the repository's own release build
(`cargo build --release --locked`), so it shares CARGO_TARGET_DIR's cache with `cargo test
--release`: after the tests it only copies.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

REPO = Path(__file__).resolve().parent.parent


class BuildWithCargo(build_py):
    def run(self):
        super().run()
        prebuilt = os.environ.get("MDRUN_PREBUILT")
        if prebuilt:
            # A folder already holding libmdrun.so and mdrun (the test suite's own build).
            target = Path(prebuilt)
        else:
            cargo = os.environ.get("CARGO", "cargo")
            subprocess.run([cargo, "build", "--release", "--locked", "--lib", "--bin", "mdrun"], cwd=REPO, check=True)
            meta = subprocess.run([cargo, "metadata", "--format-version", "1", "--no-deps"], cwd=REPO, check=True, capture_output=True, text=True)
            target = Path(json.loads(meta.stdout)["target_directory"]) / "release"
        dest = Path(self.build_lib) / "mdrun" / "_lib"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("libmdrun.so", "mdrun"):
            out = dest / name
            shutil.copy2(target / name, out)
            # The release build keeps line tables for backtraces (~0.5 GB); the package need not.
            if shutil.which("strip"):
                subprocess.run(["strip", str(out)], check=True)


class BinaryDistribution(Distribution):
    """The wheel holds a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithCargo}, distclass=BinaryDistribution)
