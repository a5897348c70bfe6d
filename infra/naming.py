"""Resource names and default tags: one place decides how every AWS name is spelled.

Names that other resources or people refer to (the endpoint, the alarms, the bucket, the
repository, the roles) are set explicitly, so they are known before anything exists: the
endpoint's auto-rollback lists alarms that watch the endpoint by name, and CI finds the roles
and the repository by the names exported from the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

# The one production variant (SageMaker) or container (Kubernetes) that serves the model.
VARIANT_NAME = "AllTraffic"
CONTAINER_PORT = 8080
# Kubernetes: /metrics only here (MLSHIP_METRICS_PORT), a port the Service does not expose.
METRICS_PORT = 9090


@dataclass(frozen=True)
class Naming:
    """Names derived from the project and environment, e.g. ``mlship-prod``."""

    project: str
    environment: str

    @property
    def prefix(self) -> str:
        """``<project>-<environment>``: the start of every resource name."""
        return f"{self.project}-{self.environment}"

    def name(self, role: str) -> str:
        """A resource name for ``role``, e.g. ``mlship-prod-endpoint``."""
        return f"{self.prefix}-{role}"

    def bucket(self, account_id: str, region: str) -> str:
        """Globally unique artifact bucket name (S3 names are global; the account makes it so)."""
        return f"{self.prefix}-artifacts-{account_id}-{region}"

    @property
    def endpoint(self) -> str:
        """The SageMaker endpoint (or the Kubernetes service) name."""
        return self.name("endpoint")

    def alarm(self, metric: str) -> str:
        """A CloudWatch alarm name, e.g. ``mlship-prod-ModelLatency-p99``."""
        return f"{self.prefix}-{metric}"

    def tags(self, extra: dict[str, str]) -> dict[str, str]:
        """Default tags on every taggable resource; ``extra`` (stack config) wins on conflict."""
        return {
            "mlship:project": self.project,
            "mlship:environment": self.environment,
            "mlship:managed-by": "pulumi",
            **extra,
        }
