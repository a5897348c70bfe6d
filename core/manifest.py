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


Dtype = Literal["float64", "int64", "bool", "category"]


class FeatureSpec(_Frozen):
    """One input column, as seen in the training data.

    ``dtype`` is the column's declared type in the training data (a float column stays float
    even when every value is whole) or the override in params.yaml. A ``category`` feature
    takes text values; the model sees each as its position in ``categories`` (see
    :mod:`core.features`).
    """

    name: str
    dtype: Dtype
    min: float | None = Field(description="Smallest value in the training data (numbers).")
    max: float | None = Field(description="Largest value in the training data (numbers).")
    nullable: bool = Field(description="True when the model accepts missing values.")
    categories: list[str] | None = Field(
        default=None,
        description="category: the values the model knows, most frequent first (capped at "
        "data.max_categories).",
    )
    other: bool = Field(
        default=False,
        description="category: the training data had more values than the cap; the rest, and "
        "any value seen later, fall in one 'other' bucket the model learnt.",
    )

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "category"


class DriftReference(_Frozen):
    """The training distribution of one feature, the reference for drift detection.

    Numbers: a histogram (``bin_edges``, ``frequencies`` per bin). Categories: ``frequencies``
    per known category in ``FeatureSpec.categories`` order, then one last share for values
    outside them ('other', or unseen), and no bin edges.
    """

    bin_edges: list[float]
    frequencies: list[float]


class TargetSpec(_Frozen):
    """The predicted column; ``classes`` in the order of ``predict_proba`` columns."""

    name: str
    classes: list[bool | int | float | str] | None = None


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
    data_version: str | None = Field(
        default=None,
        description="The exact data read: s3:<VersionId> (versioned bucket) or sha256:<hex>.",
    )
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
    """Held-out rows (as a client sends them) and the predictions recorded at training time."""

    inputs: list[list[float | str | None]]
    predictions: list[bool | int | float | str]
    probabilities: list[list[float]] | None = None
