"""Whether two bundles can answer the same requests: same task, features and classes.

A challenger served beside a champion (``MLSHIP_CHALLENGER_URI``) takes the very rows the
champion's schema validated, and its answers are compared with the champion's; both are only
meaningful when the two manifests agree on everything a request or an answer depends on. Value
ranges and drift references may differ (a retrained model sees new data). Imports only
``core.manifest``.
"""

from __future__ import annotations

from core.manifest import Manifest


def schema_differences(champion: Manifest, challenger: Manifest) -> list[str]:
    """What makes ``challenger`` unable to take ``champion``'s requests; empty when compatible.

    Compared: the task, the feature names in order, each feature's type, its categories and
    'other' bucket, and the classes (their order too: probabilities are reported by position).
    """
    problems: list[str] = []
    if champion.task != challenger.task:
        problems.append(f"task: champion {champion.task}, challenger {challenger.task}")
    names_a = [f.name for f in champion.features]
    names_b = [f.name for f in challenger.features]
    if names_a != names_b:
        missing = [n for n in names_a if n not in names_b]
        extra = [n for n in names_b if n not in names_a]
        detail = []
        if missing:
            detail.append(f"missing in challenger: {', '.join(missing[:5])}")
        if extra:
            detail.append(f"only in challenger: {', '.join(extra[:5])}")
        if not detail:
            detail.append("same names in another order")
        problems.append("features: " + "; ".join(detail))
    else:
        for a, b in zip(champion.features, challenger.features, strict=True):
            if a.dtype != b.dtype:
                problems.append(f"feature {a.name}: type {a.dtype} vs {b.dtype}")
            elif a.categories != b.categories or a.other != b.other:
                problems.append(f"feature {a.name}: categories differ")
    if champion.target.classes != challenger.target.classes:
        problems.append(
            f"classes: champion {champion.target.classes}, challenger {challenger.target.classes}"
        )
    return problems
