"""The manifest of a model bundle: typed, validated, the same for every side.

``manifest.json`` is what a bundle says about its model: identity and lineage, the task, the
feature schema (kind, range, nullability of each input column), the target and its classes,
the drift reference, the metrics, and the SHA-256 of every other file. Training builds a
:class:`ManifestDraft`; :func:`core.bundle.write_bundle` completes it into a :class:`Manifest`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1

Task = Literal["classification", "regression"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Frozen):
    """One input column, as seen in the training data."""

    name: str
    dtype: Literal["float64", "int64", "bool"]
    min: float | None = Field(description="Smallest value in the training data.")
    max: float | None = Field(description="Largest value in the training data.")
    nullable: bool = Field(description="True when the model accepts missing values (NaN).")
    categories: list[str] | None = Field(
        default=None,
        description="Allowed values of a categorical feature (mlship trains on numeric "
        "features only today, so this is always None).",
    )


class DriftReference(_Frozen):
    """Histogram of one feature in the training data, the reference for drift detection."""

    bin_edges: list[float]
    frequencies: list[float]


class TargetSpec(_Frozen):
    """The predicted column; ``classes`` in the order of ``predict_proba`` columns."""

    name: str
    classes: list[int | float | str] | None = None


class ManifestDraft(_Frozen):
    """Everything known about a model before its files are written: the one typed constructor
    of a manifest (training and tests build this; :func:`core.bundle.write_bundle` adds the
    checksums)."""

    format_version: int = FORMAT_VERSION
    name: str
    version: str
    created_at: str
    git_commit: str | None
    dataset_sha256: str
    task: Task
    params: dict[str, Any]
    metrics: dict[str, float]
    features: list[FeatureSpec]
    target: TargetSpec
    reference: dict[str, DriftReference]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


class Manifest(ManifestDraft):
    """Everything the serving app and the deploy pipeline need to know about a model."""

    files: dict[str, str] = Field(description="SHA-256 of every other file in the bundle.")


class Golden(_Frozen):
    """Held-out rows and the predictions the model gave them at training time."""

    inputs: list[list[float | None]]
    predictions: list[int | float | str]
    probabilities: list[list[float]] | None = None
