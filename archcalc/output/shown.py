"""What a result held in Python shows: the report its command prints, in a notebook (Jupyter's
_repr_html_), in rich.print (__rich__) and with .show(), rendered by this package when first used."""

from __future__ import annotations


class Shown:
    """A result whose ``report()`` is the Report its command renders."""

    def report(self):
        raise NotImplementedError

    def show(self) -> None:
        """Print the command's table with its footer, laid out for the terminal's width."""
        from rich.console import Console

        from archcalc.output.render import rich_table

        console = Console()
        console.print(rich_table(self.report(), console.width))

    def __rich__(self):
        from archcalc.output.render import rich_table

        return rich_table(self.report())

    def _repr_html_(self) -> str:
        from archcalc.output.html import fragment

        return fragment(self.report())
