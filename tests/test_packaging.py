"""A wheel carries the papers' tables, so `archcalc check` works from a plain `pip install`."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_every_table(tmp_path):
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "archcalc", source / "archcalc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tables", source / "tables")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist")], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("archcalc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    tables = sorted(p.relative_to(ROOT / "tables").as_posix() for p in (ROOT / "tables").rglob("*.csv"))
    assert tables and all(f"archcalc/_tables/{t}" in names for t in tables)

    # Unpacked away from the repository, the package finds its own copy.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = "from archcalc.checking.table import default_files as f; print(len(f()), f()[0].parent)"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stderr
    count, folder = found.stdout.split(maxsplit=1)
    assert int(count) == len(list((ROOT / "tables").glob("*.csv")))
    assert Path(folder.strip()) == site / "archcalc" / "_tables"
