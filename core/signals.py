"""The model-signal log line: the one definition of what the serving container writes and what
the stack's CloudWatch metric filters select (``infra/signals.py`` builds them from this).

The service (``app/signals.py``) writes its monitoring figures to stdout, one JSON object a
line. Exactly these top-level fields carry the signal; anything else on the line (``ts``,
``pid``) is ignored by the filters::

    {"event": "mlship.signal", "signal": "feature_psi" | "missing_ratio" | "out_of_range_ratio",
     "value": <number>, "feature": "<column>", "model_version": "<version>"}
    {"event": "mlship.signal", "signal": "class_share",
     "value": <number>, "class": "<predicted class>", "model_version": "<version>"}

``value`` is a finite JSON number, never a string: a PSI is >= 0, a ratio or a share is within
0-1 (the filters match ``value >= 0`` only). ``model_version`` is the bundle's version
(``manifest.version``: the registry's ``mlship.bundle_version`` tag, the ``X-Model-Version``
header and ``mlship_model_info{version}``).

Standard library only: the serving image and the stack both import this module.
"""

from __future__ import annotations

import math

EVENT = "mlship.signal"

# The line's fields.
EVENT_FIELD = "event"
SIGNAL_FIELD = "signal"
VALUE_FIELD = "value"
MODEL_VERSION_FIELD = "model_version"
FEATURE_FIELD = "feature"
CLASS_FIELD = "class"

# The signals (the ``signal`` field's values).
FEATURE_PSI = "feature_psi"
MISSING_RATIO = "missing_ratio"
OUT_OF_RANGE_RATIO = "out_of_range_ratio"
CLASS_SHARE = "class_share"

# Each signal's one dimension field: which feature, or which predicted class, the value is of.
DIMENSION_FIELD: dict[str, str] = {
    FEATURE_PSI: FEATURE_FIELD,
    MISSING_RATIO: FEATURE_FIELD,
    OUT_OF_RANGE_RATIO: FEATURE_FIELD,
    CLASS_SHARE: CLASS_FIELD,
}
# Signals whose value is a share of rows: within 0-1.
RATIOS = frozenset({MISSING_RATIO, OUT_OF_RANGE_RATIO, CLASS_SHARE})


def signal_fields(
    signal: str, value: float, dimension: str, model_version: str
) -> dict[str, str | float]:
    """The contract fields of one line.

    Args:
        signal: One of :data:`DIMENSION_FIELD`'s keys.
        value: The figure: finite, >= 0, and <= 1 for :data:`RATIOS`.
        dimension: The feature's name, or the predicted class as text.
        model_version: The bundle's version.

    Raises:
        ValueError: when the signal is unknown or the value outside what the filters accept.
    """
    field = DIMENSION_FIELD.get(signal)
    if field is None:
        raise ValueError(f"unknown signal {signal!r}: one of {sorted(DIMENSION_FIELD)}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (signal in RATIOS and number > 1):
        bound = "within 0-1" if signal in RATIOS else "finite and >= 0"
        raise ValueError(f"{signal} of {dimension!r} is {number!r}: it must be {bound}")
    return {
        EVENT_FIELD: EVENT,
        SIGNAL_FIELD: signal,
        VALUE_FIELD: number,
        field: dimension,
        MODEL_VERSION_FIELD: model_version,
    }
