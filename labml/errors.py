"""Errors of the learning/orchestration layer."""


class UserError(Exception):
    """Bad input (arguments, files, data, checkpoints): the CLI prints it without a traceback."""
