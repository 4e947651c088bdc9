"""What a result held in Python shows: the report its command prints, in a notebook (Jupyter's
_repr_html_), in rich.print (__rich__) and with .show(). The results (analysis, training, timing) inherit it
from here, beside errors.py, so that none of them imports archcalc.output, which renders them: it is
imported only when a result is shown."""

from __future__ import annotations


class Shown:
    """A result whose ``report(*view)`` is the Report its command renders (an analysis takes the view:
    shapes, params, flops, summary, rf or types)."""

    def report(self, *view):
        raise NotImplementedError

    def show(self, *view) -> None:
        """Print the command's table with its footer, laid out for the terminal's width (in colour where it can)."""
        from rich.console import Console

        from archcalc.output.render import rich_table

        console = Console()
        console.print(rich_table(self.report(*view), console.width))

    def __rich__(self):
        from archcalc.output.render import rich_table

        return rich_table(self.report())

    def _repr_html_(self) -> str:
        from archcalc.output.html import fragment

        return fragment(self.report())
