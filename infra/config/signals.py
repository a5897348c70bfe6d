"""Model signals: drift and data-quality alarm thresholds, and what a drift alarm sets off.

The serving container writes its monitoring figures as JSON log lines (``core/signals.py`` holds
the contract, ``infra/signals.py`` the filters); the stack turns them into CloudWatch metrics with
metric filters and alarms on them with these thresholds. ``retrainOnDrift`` (off by default) lets
the drift alarm start the retrain workflow through an EventBridge API destination;
``prometheusWorkspace`` (EKS) runs the committed Prometheus rules in Amazon Managed Service for
Prometheus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError
from infra.config.keys import Reader

# AWS Secrets Manager CreateSecret Name: 1-512 of letters, digits and /_+=.@- .
_SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class Retrain:
    """The drift -> retrain route: which repository gets the dispatch, the token's secret."""

    repository: str
    token_secret: str


@dataclass(frozen=True)
class Signals:
    """Thresholds of the model-signal alarms and the optional routes they feed.

    Attributes:
        drift_psi: Alarm when any feature's PSI exceeds this.
        missing_percent: Alarm when any feature's share of missing values exceeds this (%).
        out_of_range_percent: Alarm when any feature's share of out-of-range values exceeds
            this (%).
        retrain: The drift -> ``repository_dispatch`` route, or None (off).
        prometheus_workspace: Run the Prometheus rules in Amazon Managed Service for
            Prometheus (EKS target only).
    """

    drift_psi: float
    missing_percent: int
    out_of_range_percent: int
    retrain: Retrain | None
    prometheus_workspace: bool


def parse_signals(r: Reader, *, target: str, github_repository: str) -> Signals:
    """``alarmDriftPsi``, ``alarmMissingPercent``, ``alarmOutOfRangePercent``,
    ``retrainOnDrift``, ``retrainRepository``, ``retrainTokenSecret``, ``prometheusWorkspace``.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    raw_psi = r.string("alarmDriftPsi")
    try:
        psi = float(raw_psi)
    except ValueError:
        psi = -1.0
    if not 0 < psi <= 10:
        raise ConfigError(
            f"mlship:alarmDriftPsi is {raw_psi!r}: give a number above 0 such as 0.2 (PSI "
            "0.1-0.25 is a moderate shift, above 0.25 a large one)."
        )
    retrain = None
    if r.boolean("retrainOnDrift"):
        repository = r.string("retrainRepository") or github_repository
        if not _GITHUB_REPO_RE.match(repository):
            raise ConfigError(
                f"mlship:retrainRepository is {repository!r}: give the repository as owner/name."
            )
        secret = r.required_str(
            "retrainTokenSecret",
            "create a Secrets Manager secret holding the GitHub token (README, Drift triggers "
            "retraining) and `pulumi config set mlship:retrainTokenSecret <name>`",
        )
        if not _SECRET_NAME_RE.match(secret):
            raise ConfigError(
                f"mlship:retrainTokenSecret is {secret!r}: give a Secrets Manager secret name "
                "(letters, digits and /_+=.@-)."
            )
        retrain = Retrain(repository=repository, token_secret=secret)
    prometheus = r.boolean("prometheusWorkspace")
    if prometheus and target != "eks":
        raise ConfigError(
            "mlship:prometheusWorkspace is true on a SageMaker stack: the managed scraper reads "
            "an EKS cluster. Set it on an EKS stack (mlship:target eks) or leave it false."
        )
    return Signals(
        drift_psi=psi,
        missing_percent=r.integer("alarmMissingPercent", 1, 100),
        out_of_range_percent=r.integer("alarmOutOfRangePercent", 1, 100),
        retrain=retrain,
        prometheus_workspace=prometheus,
    )
