"""The one error root of mlship, and the errors every side shares.

Every problem a user can fix is an :class:`MlshipError` whose message names the problem and
the fix. The CLI prints it as one ``error:`` line and exits with ``exit_code``; the service
maps the client-input errors to HTTP statuses once, in ``app/errors.py``. Errors that belong
to one side only (a training gate, a SageMaker job) subclass these where they are raised.

Standard library only: every side, the serving image included, imports this module.
"""


class MlshipError(Exception):
    """A problem the user can fix: the message names the problem and the fix."""

    exit_code = 1


class DataError(MlshipError):
    """The training or scoring data cannot be used as it is."""


class InvalidInput(DataError):
    """Input rows do not match the model's feature schema (HTTP 422 in the service)."""


class ConfigError(MlshipError):
    """A settings file, parameter or stack value is invalid."""


class ModelLoadError(MlshipError):
    """The model could not be resolved or loaded; nothing may serve or score with it."""


class GateFailed(MlshipError):
    """The evaluated model is not good enough to register."""

    exit_code = 3
