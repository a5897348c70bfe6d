"""Promotion on evidence: the challenger's comparison with the champion, read from ``/metrics``.

A service running a challenger (``MLSHIP_CHALLENGER_URI``, ``app/routing.py``) exports per-model
request, error and latency metrics and the shadow comparison. :func:`read_evidence` sums them
over workers; :func:`check_evidence` returns what stands in the way of promoting the challenger,
against thresholds from the flags document (its ``thresholds`` block, ``core/flags.py``) or the
command line. ``mlship smoke --evidence`` runs it after the golden and load phases.

SageMaker endpoints expose no ``/metrics``: their evidence is the CloudWatch alarms that roll a
deployment back (``infra/components/sagemaker.py``); this gate reads a service's own metrics.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from core.errors import MlshipError
from core.flags import Thresholds
from pipelines.release.targets import EndpointUnreachable


@dataclass
class Evidence:
    """The comparison, summed over workers (``worker`` labels) and modes where it says so."""

    versions: dict[str, str] = field(default_factory=dict)  # role -> model_version
    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # role
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency_count: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    compared_rows: float = 0.0
    agreeing_rows: float = 0.0
    abs_difference: float = 0.0

    def error_rate(self, role: str) -> float | None:
        n = self.requests[role]
        return self.errors[role] / n if n else None

    def mean_latency_ms(self, role: str) -> float | None:
        n = self.latency_count[role]
        return 1000 * self.latency_sum[role] / n if n else None

    @property
    def agreement(self) -> float | None:
        return self.agreeing_rows / self.compared_rows if self.compared_rows else None

    @property
    def mean_abs_difference(self) -> float | None:
        return self.abs_difference / self.compared_rows if self.compared_rows else None


def read_evidence(text: str) -> Evidence:
    """Parse a Prometheus exposition into :class:`Evidence`.

    Raises:
        MlshipError: when the service runs no challenger (no per-model metrics at all).
    """
    ev = Evidence()
    sums = {
        "mlship_shadow_compared_rows": "compared_rows",
        "mlship_shadow_agreeing_rows": "agreeing_rows",
        "mlship_shadow_abs_difference": "abs_difference",
    }
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            role = s.labels.get("role")
            if s.name == "mlship_model_requests_total" and role:
                ev.versions[role] = s.labels["model_version"]
                ev.requests[role] += s.value
            elif s.name == "mlship_model_errors_total" and role:
                ev.errors[role] += s.value
            elif s.name == "mlship_model_latency_seconds_sum" and role:
                ev.latency_sum[role] += s.value
            elif s.name == "mlship_model_latency_seconds_count" and role:
                ev.latency_count[role] += s.value
            elif s.name.removesuffix("_total") in sums and s.name.endswith("_total"):
                attr = sums[s.name.removesuffix("_total")]
                setattr(ev, attr, getattr(ev, attr) + s.value)
    if "challenger" not in ev.versions:
        raise MlshipError(
            "The service exports no challenger metrics (mlship_model_requests_total with "
            'role="challenger"): it runs no challenger (set MLSHIP_CHALLENGER_URI), so there is '
            "no evidence to promote on."
        )
    return ev


def check_evidence(ev: Evidence, t: Thresholds) -> list[str]:
    """What the evidence fails; empty when the challenger may be promoted."""
    problems: list[str] = []
    compared = ev.compared_rows
    needs_rows = t.min_agreement is not None or t.max_abs_difference is not None
    if needs_rows and compared < t.min_compared_rows:
        problems.append(
            f"only {compared:g} rows compared (at least {t.min_compared_rows} needed: raise the "
            "shadow percent or wait for more traffic)"
        )
    elif t.min_agreement is not None:
        agreement = ev.agreement
        if agreement is None or agreement < t.min_agreement:
            problems.append(
                f"agreement {_pct(agreement)} is below {t.min_agreement:.2%} over {compared:g} rows"
            )
    if needs_rows and compared >= t.min_compared_rows and t.max_abs_difference is not None:
        diff = ev.mean_abs_difference
        if diff is None or diff > t.max_abs_difference:
            problems.append(f"mean absolute difference {diff} is above {t.max_abs_difference:g}")
    if t.max_error_rate is not None:
        rate = ev.error_rate("challenger")
        if rate is None:
            problems.append("the challenger has served no request: no error rate to judge")
        elif rate > t.max_error_rate:
            problems.append(
                f"challenger error rate {rate:.2%} is above {t.max_error_rate:.2%} "
                f"({ev.errors['challenger']:g} of {ev.requests['challenger']:g})"
            )
    if t.max_latency_delta_ms is not None:
        challenger, champion = ev.mean_latency_ms("challenger"), ev.mean_latency_ms("champion")
        if challenger is None or champion is None:
            problems.append("no latency for both models: no latency delta to judge")
        elif challenger - champion > t.max_latency_delta_ms:
            problems.append(
                f"challenger mean latency {challenger:.2f} ms is {challenger - champion:.2f} ms "
                f"above the champion's {champion:.2f} ms (at most {t.max_latency_delta_ms:g})"
            )
    return problems


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def fetch_metrics(base_url: str, timeout: float) -> str:
    """GET ``{base_url}/metrics``.

    Raises:
        EndpointUnreachable: naming the URL and the fix.
    """
    url = base_url.rstrip("/") + "/metrics"
    if not url.startswith(("http://", "https://")):
        raise EndpointUnreachable(f"{url}: --url must be http:// or https://.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - scheme checked
            text: str = r.read().decode()
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise EndpointUnreachable(f"Cannot read {url}: HTTP {e.code}.") from e
        raise EndpointUnreachable(
            f"{url} answers 404: with MLSHIP_METRICS_PORT set (the EKS stack sets 9090) "
            "/metrics answers on that port only; give --metrics-url with it."
        ) from e
    except (urllib.error.URLError, OSError) as e:
        raise EndpointUnreachable(
            f"Cannot read {url} ({e}): is the service up, and /metrics reachable from here?"
        ) from e
    return text


def describe(ev: Evidence) -> str:
    """One line for the gate's log."""
    return (
        f"evidence: champion {ev.versions.get('champion')} vs challenger "
        f"{ev.versions.get('challenger')}: {ev.compared_rows:g} rows compared, agreement "
        f"{_pct(ev.agreement)}, challenger errors {_pct(ev.error_rate('challenger'))}, mean "
        f"latency champion {_ms(ev.mean_latency_ms('champion'))}, challenger "
        f"{_ms(ev.mean_latency_ms('challenger'))}"
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def run_evidence_gate(
    metrics_text: Callable[[], str], thresholds: Thresholds, say: Callable[[str], None] = print
) -> Evidence:
    """Read the comparison and refuse promotion below ``thresholds``.

    Raises:
        SmokeFailed: naming every threshold the challenger misses.
    """
    from pipelines.release.smoke import SmokeFailed

    ev = read_evidence(metrics_text())
    say(describe(ev))
    problems = check_evidence(ev, thresholds)
    if problems:
        raise SmokeFailed(
            f"Promotion refused for challenger {ev.versions['challenger']}: "
            + "; ".join(problems)
            + "."
        )
    say("smoke: evidence PASS")
    return ev
