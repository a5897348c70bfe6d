"""NumPy ``.npy`` bodies, as the SageMaker SDK's ``NumpySerializer`` sends them and its
``NumpyDeserializer`` reads them (the defaults of its ``SKLearnPredictor``): read by the service
and by the monitoring report from what Data Capture kept of them. Never unpickled."""

from __future__ import annotations

import io
import tokenize

import numpy as np

from core.errors import DataError, InvalidInput
from core.features import FeatureSchema

_MAGIC = b"\x93NUMPY"
# What numpy's .npy reader raises on a damaged file: its header is Python literal syntax, read
# with ast.literal_eval and, failing that, tokenize (a NUL there raised TokenError: hypothesis).
_ERRORS = (ValueError, SyntaxError, tokenize.TokenError, EOFError, OSError, TypeError)


class NpyError(DataError):
    """The bytes are not a ``.npy`` array that may be read (HTTP 400 in the service)."""


def read_npy(body: bytes) -> np.ndarray:
    """The array in ``body``, never unpickled (an object array is refused), nor a record
    array."""
    if not body.startswith(_MAGIC):
        raise NpyError(
            "The body is not a NumPy .npy array (it does not open with .npy's magic bytes); "
            "send what numpy.save writes, or CSV or JSON."
        )
    try:
        array = np.lib.format.read_array(io.BytesIO(body), allow_pickle=False)
    except _ERRORS as e:
        if isinstance(e, ValueError) and "allow_pickle" in str(e):
            raise NpyError(
                "The .npy body holds Python objects, which the service never unpickles; send "
                "a numeric array, or CSV or JSON for mixed text and numbers."
            ) from None
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise NpyError(f"The body is not a NumPy .npy array ({reason.rstrip('.')}).") from None
    if array.dtype.names is not None:
        raise NpyError("The .npy body holds a record array; send a plain array of rows.")
    return array


def npy_to_matrix(body: bytes, schema: FeatureSchema) -> np.ndarray:
    """A ``.npy`` body as a validated matrix: a 2-D array of rows, or a 1-D array as one row.
    Numbers as they are (NaN is a missing value), text through the JSON rules (a category's
    text; a number written as text is refused).

    Raises:
        NpyError: when the body is not a readable array.
        InvalidInput: when its rows do not fit the schema.
    """
    array = read_npy(body)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInput(
            f"The .npy array has shape {list(array.shape)}; send [rows, {schema.n}] for "
            f"{schema.expected()}."
        )
    if array.dtype.kind in "iuf" and not schema.any_categorical:
        if array.shape[1] != schema.n:
            raise InvalidInput(
                f"The .npy array has {array.shape[1]} columns; the model expects "
                f"{schema.expected()}."
            )
        return schema.validate(np.asarray(array, dtype=np.float64))
    # text, booleans, or a model with text features: the JSON rules, value by value
    return schema.validate(schema.rows_to_matrix(array.tolist()))
