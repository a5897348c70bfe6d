"""The KLL quantile sketch of a numeric column, as Model Monitor's analyzer writes it.

``statistics.json`` describes each numeric feature's distribution with a KLL sketch
(``distribution.kll.sketch``: ``parameters`` ``c`` and ``k``, and ``data``, the items kept at
each level) and ten equal-width ``buckets`` between the minimum and the maximum ("Schema for
Statistics (statistics.json file)",
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html). The
analyzer is built on Deequ, whose sketch is ``QuantileNonSample`` (sketch size 2048,
shrinking factor 0.64, the values AWS's own baselines carry) and whose buckets come from
``KLLSketch.computeMetricFrom``; this module follows both, step for step:
https://github.com/awslabs/deequ/blob/master/src/main/scala/com/amazon/deequ/analyzers/
(``QuantileNonSample.scala``, ``NonSampleCompactor.scala``, ``KLLSketch.scala``).

An item at level ``h`` of the sketch stands for ``2**h`` values. Up to 2050 values (the
first level's capacity) the sketch keeps every value, in order, and the bucket counts are
exact; beyond that it compacts as Deequ does (deterministically: Deequ's random offset is
commented out in its source).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SKETCH_SIZE = 2048
SHRINKING_FACTOR = 0.64
BUCKETS = 10


def capacity(height: int, k: int = SKETCH_SIZE, c: float = SHRINKING_FACTOR) -> int:
    """How many items level ``height`` holds before it is compacted."""
    return 2 * (math.ceil(k * c**height / 2) + 1)


@dataclass
class _Compactor:
    buffer: list[float] = field(default_factory=list)
    compactions: int = 0
    offset: int = 0

    def compact(self) -> list[float]:
        """Every other item of the sorted buffer (an even count of them) moves up a level;
        an odd last item stays."""
        items = len(self.buffer)
        even = items - items % 2
        if self.compactions % 2 == 1:
            self.offset = 1 - self.offset
        promoted = sorted(self.buffer[:even])[self.offset : even : 2]
        self.buffer = [self.buffer[-1]] if items % 2 else []
        self.compactions += 1
        return promoted


def sketch(
    values: Sequence[float], k: int = SKETCH_SIZE, c: float = SHRINKING_FACTOR
) -> list[list[float]]:
    """The items of each level of the sketch of ``values``, added in order."""
    levels = [_Compactor()]
    total = capacity(0, k, c)
    held = 0
    i = 0
    while i < len(values):
        # Deequ condenses once an update takes the held items past the total capacity: add
        # items up to that point at once, then condense as it would.
        chunk = values[i : i + max(1, total - held + 1)]
        levels[0].buffer.extend(float(v) for v in chunk)
        held += len(chunk)
        i += len(chunk)
        if held > total:
            for height, level in enumerate(levels):
                if len(level.buffer) >= capacity(height, k, c):
                    if height + 1 >= len(levels):
                        levels.append(_Compactor())
                        total = sum(capacity(h, k, c) for h in range(len(levels)))
                    levels[height + 1].buffer.extend(level.compact())
                    held = sum(len(lv.buffer) for lv in levels)
                    break
    return [level.buffer for level in levels]


def buckets(data: list[list[float]], low: float, high: float) -> list[dict[str, Any]]:
    """Ten equal-width buckets from ``low`` to ``high`` with the sketch's count in each:
    ``[lower, upper)``, the last one ``[lower, upper]``."""
    items = np.array([v for level in data for v in level], dtype=np.float64)
    weights = np.array([2**h for h, level in enumerate(data) for _ in level], dtype=np.int64)
    order = np.argsort(items, kind="stable")
    items, cumulative = items[order], np.concatenate(([0], np.cumsum(weights[order])))

    def below(x: float) -> int:
        return int(cumulative[np.searchsorted(items, x, side="left")])

    def at_or_below(x: float) -> int:
        return int(cumulative[np.searchsorted(items, x, side="right")])

    out = []
    for i in range(BUCKETS):
        lower = low + (high - low) * i / float(BUCKETS)
        upper = low + (high - low) * (i + 1) / float(BUCKETS)
        top = at_or_below(upper) if i == BUCKETS - 1 else below(upper)
        out.append({"lower_bound": lower, "upper_bound": upper, "count": top - below(lower)})
    return out


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """The ``distribution`` member of a numeric feature's statistics (at least one value)."""
    data = sketch(values)
    return {
        "kll": {
            "buckets": buckets(data, float(min(values)), float(max(values))),
            "sketch": {
                "parameters": {"c": SHRINKING_FACTOR, "k": float(SKETCH_SIZE)},
                "data": data,
            },
        }
    }
