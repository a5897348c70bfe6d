"""Trust policies: who may assume each role (AWS services, GitHub's OIDC, one service account)."""

from __future__ import annotations

from collections.abc import Sequence

from infra.policies.document import Document, Statement, document

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"


def service_assume_role(service: str, account_id: str | None = None) -> Document:
    """Trust policy letting one AWS service assume a role (optionally only for this account)."""
    statement: Statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account_id is not None:
        # Confused-deputy guard: only calls made on behalf of this account.
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return document(statement)


def eks_cluster_assume_role() -> Document:
    """Trust policy of the EKS cluster role (EKS also tags the session)."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    )


def github_deploy_assume_role(
    *, provider_arn: str, repository: str, environments: Sequence[str]
) -> Document:
    """Trust policy of the deploy role: one repository, branch ``main`` and its environments.

    ``sub`` is matched exactly (``StringEquals``, no wildcards) and ``aud`` must be STS.
    """
    subjects = [f"repo:{repository}:ref:refs/heads/main"] + [
        f"repo:{repository}:environment:{env}" for env in environments
    ]
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE,
                    f"{GITHUB_OIDC_HOST}:sub": subjects,
                }
            },
        }
    )


def irsa_assume_role(
    *, provider_arn: str, issuer_host: str, namespace: str, service_account: str
) -> Document:
    """Trust policy letting exactly one Kubernetes service account assume the role (IRSA)."""
    return document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{issuer_host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{issuer_host}:aud": STS_AUDIENCE,
                }
            },
        }
    )
