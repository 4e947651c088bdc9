"""The one exception family the library raises for bad input; the CLI turns it into one line."""


class ArchcalcError(Exception):
    """A domain error with a message that says what was wrong and what would be right."""


class InputError(ArchcalcError):
    """A value given by the user (size, kernel, model name, option) cannot be used."""


class ForwardError(ArchcalcError):
    """The model's forward pass failed; the message names the layer where it failed.

    ``ran`` holds the analysis of the layers that ran before the failure, when there is one.
    """

    ran = None
