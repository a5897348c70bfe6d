"""The signal line contract: exactly the filters' fields, and only values the filters accept."""

from __future__ import annotations

import math

import pytest

from core.signals import CLASS_SHARE, DIMENSION_FIELD, FEATURE_PSI, MISSING_RATIO, signal_fields


def test_signal_fields_are_the_contract_fields() -> None:
    assert signal_fields(FEATURE_PSI, 0.31, "bill_length_mm", "7") == {
        "event": "mlship.signal",
        "signal": "feature_psi",
        "value": 0.31,
        "feature": "bill_length_mm",
        "model_version": "7",
    }
    share = signal_fields(CLASS_SHARE, 1, "Adelie", "7")
    assert share["class"] == "Adelie"
    assert share["value"] == 1.0 and isinstance(share["value"], float)
    assert set(DIMENSION_FIELD.values()) == {"feature", "class"}


@pytest.mark.parametrize(
    ("signal", "value"),
    [
        (FEATURE_PSI, -0.01),
        (FEATURE_PSI, math.inf),
        (FEATURE_PSI, math.nan),
        (MISSING_RATIO, 1.5),
        (CLASS_SHARE, -0.1),
    ],
)
def test_signal_fields_refuse_values_the_filters_would_drop(signal: str, value: float) -> None:
    with pytest.raises(ValueError, match=signal):
        signal_fields(signal, value, "x", "7")


def test_signal_fields_refuse_an_unknown_signal() -> None:
    with pytest.raises(ValueError, match="unknown signal 'feature_drift'"):
        signal_fields("feature_drift", 0.1, "x", "7")
