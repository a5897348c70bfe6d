"""StackConfig: the one reader of ``pulumi.Config``; every ``mlship:`` key, validated once.

``Pulumi.yaml``'s typed ``config:`` block is the single declaration of the keys (``keys``);
one module per section parses them (``sagemaker``, ``monitoring``, ``network``, ``github``,
``eks``, ``batch``, ``signals``) and ``stack`` composes the sections into
:class:`StackConfig`. An invalid value raises :class:`core.errors.ConfigError` naming the key,
the problem and the fix.
"""

from __future__ import annotations

from typing import Any

from infra.config.eks import SUPPORTED_KUBERNETES, Eks
from infra.config.github import Github
from infra.config.keys import NAMESPACE, Key, declared_keys, keys_by_name, reference_table
from infra.config.monitoring import Alarms
from infra.config.network import Network
from infra.config.sagemaker import Autoscaling, Rollout, Serverless, Strategy
from infra.config.stack import StackConfig, Target

__all__ = [
    "NAMESPACE",
    "SUPPORTED_KUBERNETES",
    "Alarms",
    "Autoscaling",
    "Eks",
    "Github",
    "Key",
    "Network",
    "Rollout",
    "Serverless",
    "StackConfig",
    "Strategy",
    "Target",
    "declared_keys",
    "keys_by_name",
    "reference_table",
]


def __getattr__(name: str) -> Any:
    """``KEYS`` and ``KEYS_BY_NAME``, read from ``Pulumi.yaml`` when first asked for (not at
    import: importing the package reads no file)."""
    if name == "KEYS":
        return declared_keys()
    if name == "KEYS_BY_NAME":
        return keys_by_name()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
