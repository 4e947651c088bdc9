"""The package metadata lives in pyproject.toml; this file only ships the papers' tables.

tables/ sits at the top of the repository (where CI and contributors edit it); a wheel carries a
copy as archcalc/_tables so that `archcalc check` works from a plain `pip install`.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTables(build_py):
    def run(self):
        super().run()
        source = Path(__file__).parent / "tables"
        target = Path(self.build_lib) / "archcalc" / "_tables"
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.md"))


setup(cmdclass={"build_py": BuildWithTables})
