"""Packages the generated Python binding and its native library as the `diaban` package.

    pip install ./bindings/python

builds the library and generates the binding (`bash bindings/generate.sh`, which needs
cargo), unless DIABAN_BINDINGS_DIR names a folder that already holds `diaban.py` and
`libdiaban_bindings.so` (what the test command does after generating them once).
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

REPO = Path(__file__).resolve().parents[2]
LIBRARY = "libdiaban_bindings.so"


def generated() -> Path:
    given = os.environ.get("DIABAN_BINDINGS_DIR")
    if given:
        return Path(given).resolve()
    subprocess.run(["bash", str(REPO / "bindings" / "generate.sh")], check=True, cwd=REPO)
    return REPO / "target" / "bindings" / "python"


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        source = generated()
        package = Path(self.build_lib) / "diaban"
        package.mkdir(parents=True, exist_ok=True)
        # The generated module loads the library from its own folder.
        shutil.copy(source / "diaban.py", package / "__init__.py")
        shutil.copy(source / LIBRARY, package / LIBRARY)


class NativeDistribution(Distribution):
    """The wheel carries a native library, so it is tagged for this platform."""

    def has_ext_modules(self):
        return True

    def has_pure_modules(self):
        # The package is assembled by BuildWithLibrary; make sure `build` runs it.
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=NativeDistribution, packages=[])
