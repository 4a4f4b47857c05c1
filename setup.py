"""Ships the standard tasks and baselines inside the wheel, as package data under ``eosbench/_data/``.

They live at the top of the repository (``tasks/``, ``baselines/``), outside the package, so setuptools'
package data cannot name them; ``build_py`` copies them in. An editable install skips the copy: it reads
them from the source tree (see ``eosbench.catalog.data_root``). Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("tasks", "baselines")  # copied to eosbench/_data/<name>


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        here = Path(__file__).resolve().parent
        for name in DATA:
            target = Path(self.build_lib) / "eosbench" / "_data" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(here / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
