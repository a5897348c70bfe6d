"""ImageRepository: the ECR repository of the serving image."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import policies

RESOURCE_TYPE = "mlship:registry:ImageRepository"


@dataclass(frozen=True)
class ImageRepositoryArgs:
    """Inputs of :class:`ImageRepository`.

    Attributes:
        repository_name: ECR repository name.
        key_arn: KMS key encrypting the images.
        tags: Tags on the repository.
        protect: Refuse to delete the repository (it holds every deployed image).
    """

    repository_name: str
    key_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)
    protect: bool = False


class ImageRepository(pulumi.ComponentResource):
    """ECR with scan on push, immutable tags, KMS encryption and a lifecycle policy."""

    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ImageRepositoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        self.repository = aws.ecr.Repository(
            f"{name}-repository",
            name=args.repository_name,
            image_scanning_configuration={"scan_on_push": True},
            # A tag always means the same image: a rollback redeploys exactly what was tested.
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.key_arn}],
            tags=args.tags,
            # Stateful: deleting it deletes the images the endpoints run.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=policies.dumps(policies.ecr_lifecycle_policy()),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.repository_url = self.repository.repository_url
        self.repository_arn = self.repository.arn
        self.register_outputs(
            {"repository_url": self.repository_url, "repository_arn": self.repository_arn}
        )
