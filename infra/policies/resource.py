"""Resource policies: the KMS key, the bucket and the alert topic; and ECR's lifecycle policy."""

from __future__ import annotations

from collections.abc import Sequence

from infra.policies.document import Document, Statement, document

# Key administration, listed action by action (no "kms:Create*": it would include key stores).
KEY_ADMIN = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:CreateGrant",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


def key_policy(*, account_id: str, service_principals: Sequence[str] = ()) -> Document:
    """KMS key policy: the account administers and delegates use through IAM; named services
    (e.g. CloudWatch publishing to an encrypted topic) may use the key. ``*`` means this key.
    """
    root = f"arn:aws:iam::{account_id}:root"
    statements: list[Statement] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": sorted(KEY_ADMIN),
            "Resource": "*",
        },
        {
            "Sid": "AccountDelegatesUse",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:GenerateDataKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo",
            ],
            "Resource": "*",
        },
    ]
    if service_principals:
        statements.append(
            {
                "Sid": "ServicesUse",
                "Effect": "Allow",
                "Principal": {"Service": sorted(service_principals)},
                # As AWS documents for CloudWatch alarms publishing to an encrypted topic.
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
            }
        )
    return document(*statements)


def tls_only_bucket_policy(*, bucket_arn: str) -> Document:
    """Deny every request to the bucket that does not use TLS."""
    return document(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def alarm_topic_policy(
    *, topic_arn: str, account_id: str, publishers: Sequence[str] = ()
) -> Document:
    """Let CloudWatch alarms of this account publish to the alert topic; and each service of
    ``publishers`` (e.g. ``events.amazonaws.com`` for EventBridge rules, ``aps.amazonaws.com``
    for the Prometheus alert manager), also only on behalf of this account."""
    statements: list[Statement] = [
        {
            "Sid": "CloudWatchAlarmsPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    ]
    for service in sorted(set(publishers) - {"cloudwatch.amazonaws.com"}):
        statements.append(
            {
                "Sid": "".join(p.capitalize() for p in service.split(".")[0].split("-"))
                + "Publish",
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        )
    return document(*statements)


def ecr_lifecycle_policy(*, keep_images: int = 30, untagged_days: int = 7) -> Document:
    """ECR lifecycle (not IAM): expire untagged layers after a week, keep the newest images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }
