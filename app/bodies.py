"""A request body of one media type to the validated feature matrix: the reader ``POST
/invocations`` applies to every body, and the batch input check (:mod:`app.input_check`)
applies to every mini-batch a transform job will send, so the two cannot disagree."""

from __future__ import annotations

import numpy as np

from app.inputs import csv_to_matrix, npy_to_matrix
from app.jsonlines import json_rows_to_matrix, jsonlines_to_matrix
from app.slices import RowSlices
from app.transport import CSV, JSONLINES, NPY
from core.features import FeatureSchema


def body_matrix(
    content_type: str, body: bytes, schema: FeatureSchema, slices: RowSlices | None = None
) -> np.ndarray:
    """The body of ``content_type`` (CSV, JSON Lines, .npy, else JSON) as a validated matrix
    (a large JSON Lines body checked on ``slices``' threads).

    Raises:
        InvalidInput, BadRequest: what the body breaks, naming the row and the feature.
    """
    if content_type == CSV:
        return csv_to_matrix(body, schema)
    if content_type == JSONLINES:
        return jsonlines_to_matrix(body, schema, slices)
    if content_type == NPY:
        return npy_to_matrix(body, schema)
    return json_rows_to_matrix(body, schema, JSONLINES)
