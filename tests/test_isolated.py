"""A call run in a child process (archcalc/analysis/isolated.py): its value, its error's text, or how it died."""

import os
import sys

import pytest

from archcalc.analysis import isolated

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked only on Linux")


def test_the_value_comes_back():
    assert isolated.run(lambda: 6 * 7) == 42
    assert isolated.run(lambda: os.getpid()) != os.getpid()  # (it ran elsewhere)


def test_an_error_comes_back_as_its_text():
    def fails():
        raise ValueError("no such layer")

    with pytest.raises(isolated.Failed, match="^ValueError: no such layer$"):
        isolated.run(fails)


def test_an_abort_is_a_failure_with_what_was_said():
    def aborts():
        os.write(2, b"terminate called after throwing an instance of 'c10::Error'\n  what():  an internal check\n")
        os.abort()

    with pytest.raises(isolated.Failed, match="^its process was killed by SIGABRT: an internal check$"):
        isolated.run(aborts)
    with pytest.raises(isolated.Failed, match="^its process was ended with no answer$"):
        isolated.run(lambda: os._exit(3))
