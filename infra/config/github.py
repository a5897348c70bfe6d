"""Who may deploy: one GitHub repository, its branch ``main`` and its environments."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError
from infra.config.keys import Reader

_GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_ENVIRONMENT_RE = re.compile(r"^[\w .-]{1,255}$")
_ACCOUNT_ARN_RE = re.compile(
    r"^arn:aws:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
)


@dataclass(frozen=True)
class Github:
    """Who may assume the deploy role: one repository, branch ``main`` and environments."""

    repository: str
    environments: tuple[str, ...]
    oidc_provider_arn: str


def parse_github(r: Reader, *, environment: str) -> Github:
    """``githubRepository``, ``githubEnvironments`` (default: the environment name) and
    ``githubOidcProviderArn``.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    repo = r.required_str(
        "githubRepository", "`pulumi config set mlship:githubRepository owner/name`"
    )
    if not _GITHUB_REPO_RE.match(repo) or "*" in repo:
        raise ConfigError(
            f"mlship:githubRepository is {repo!r}: give exactly one repository as owner/name "
            "(no wildcards: it decides who can deploy)."
        )
    github = Github(
        repository=repo,
        environments=r.strings(
            "githubEnvironments", _ENVIRONMENT_RE, "a GitHub environment name such as prod"
        )
        or (environment,),
        oidc_provider_arn=r.string("githubOidcProviderArn"),
    )
    if github.oidc_provider_arn and not _ACCOUNT_ARN_RE.match(github.oidc_provider_arn):
        raise ConfigError(
            f"mlship:githubOidcProviderArn is {github.oidc_provider_arn!r}: give the ARN "
            "arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com, or "
            "leave it empty to create the provider."
        )
    return github
