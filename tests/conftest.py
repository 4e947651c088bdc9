import json
import os

import pytest
from hypothesis import settings

# The property tests draw the same examples on every run, so that CI is reproducible; set
# HYPOTHESIS_PROFILE=explore to draw new ones while developing.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from archcalc.cli.app import main

if os.environ.get("PYTEST_XDIST_WORKER"):  # (two workers on two cores: one thread each, not two fighting for one)
    import torch

    torch.set_num_threads(1)


class Run:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """Run archcalc in-process: returns exit code, stdout and stderr."""

    def run(*args: str) -> Run:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(exit_info.value.code, captured.out, captured.err)

    return run
