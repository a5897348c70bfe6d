"""Errors every mlship command can raise; the CLI prints them and exits non-zero.

Standard library only: the serving app imports this module.
"""


class MlshipError(Exception):
    """A problem the user can fix: the message names the problem and the fix."""

    exit_code = 1


class DataError(MlshipError):
    """The training or scoring data cannot be used as it is."""


class ConfigError(MlshipError):
    """A settings file, parameter or stack value is invalid."""


class GateFailed(MlshipError):
    """The evaluated model is not good enough to register."""

    exit_code = 3
