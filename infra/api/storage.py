"""The calls pulumi-aws makes for the S3 bucket and its settings, KMS and ECR."""

from __future__ import annotations

from urllib.parse import urlencode

from infra.api.request import Call, Converter, Inputs, call, tag_list


def _bucket(i: Inputs, region: str) -> list[Call]:
    calls = [
        call(
            "s3",
            "CreateBucket",
            Bucket=i.get("bucket"),
            # us-east-1 is the one region CreateBucket takes without a location constraint.
            CreateBucketConfiguration={"LocationConstraint": region}
            if region != "us-east-1"
            else None,
        )
    ]
    if i.get("tags"):
        calls.append(
            call("s3", "PutBucketTagging", Bucket=i.get("bucket"), Tagging={"TagSet": tag_list(i)})
        )
    return calls


def _bucket_versioning(i: Inputs, region: str) -> list[Call]:
    config = i.get("versioningConfiguration") or {}
    return [
        call(
            "s3",
            "PutBucketVersioning",
            Bucket=i.get("bucket"),
            VersioningConfiguration={"Status": config.get("status")},
        )
    ]


def _bucket_encryption(i: Inputs, region: str) -> list[Call]:
    rules = []
    for rule in i.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        rules.append(
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": default.get("sseAlgorithm"),
                    "KMSMasterKeyID": default.get("kmsMasterKeyId"),
                },
                "BucketKeyEnabled": rule.get("bucketKeyEnabled"),
            }
        )
    return [
        call(
            "s3",
            "PutBucketEncryption",
            Bucket=i.get("bucket"),
            ServerSideEncryptionConfiguration={"Rules": rules},
        )
    ]


def _public_access_block(i: Inputs, region: str) -> list[Call]:
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    return [
        call(
            "s3",
            "PutPublicAccessBlock",
            Bucket=i.get("bucket"),
            PublicAccessBlockConfiguration={f: i.get(f[0].lower() + f[1:]) for f in flags},
        )
    ]


def _bucket_policy(i: Inputs, region: str) -> list[Call]:
    return [call("s3", "PutBucketPolicy", Bucket=i.get("bucket"), Policy=i.get("policy"))]


def _ownership(i: Inputs, region: str) -> list[Call]:
    rule = i.get("rule") or {}
    return [
        call(
            "s3",
            "PutBucketOwnershipControls",
            Bucket=i.get("bucket"),
            OwnershipControls={"Rules": [{"ObjectOwnership": rule.get("objectOwnership")}]},
        )
    ]


def _lifecycle(i: Inputs, region: str) -> list[Call]:
    rules = []
    for rule in i.get("rules") or []:
        noncurrent = rule.get("noncurrentVersionExpiration") or {}
        abort = rule.get("abortIncompleteMultipartUpload") or {}
        rules.append(
            {
                "ID": rule.get("id"),
                "Status": rule.get("status"),
                "Filter": {"Prefix": (rule.get("filter") or {}).get("prefix")},
                "NoncurrentVersionExpiration": {
                    "NoncurrentDays": noncurrent.get("noncurrentDays"),
                    "NewerNoncurrentVersions": noncurrent.get("newerNoncurrentVersions"),
                },
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": abort.get("daysAfterInitiation")
                },
            }
        )
    return [
        call(
            "s3",
            "PutBucketLifecycleConfiguration",
            Bucket=i.get("bucket"),
            LifecycleConfiguration={"Rules": rules},
        )
    ]


def _kms_key(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "kms",
            "CreateKey",
            Description=i.get("description"),
            Policy=i.get("policy"),
            Tags=tag_list(i, "TagKey", "TagValue"),
        )
    ]


def _kms_alias(i: Inputs, region: str) -> list[Call]:
    return [call("kms", "CreateAlias", AliasName=i.get("name"), TargetKeyId=i.get("targetKeyId"))]


def _repository(i: Inputs, region: str) -> list[Call]:
    encryption = (i.get("encryptionConfigurations") or [{}])[0]
    return [
        call(
            "ecr",
            "CreateRepository",
            repositoryName=i.get("name"),
            imageTagMutability=i.get("imageTagMutability"),
            imageScanningConfiguration={
                "scanOnPush": (i.get("imageScanningConfiguration") or {}).get("scanOnPush")
            },
            encryptionConfiguration={
                "encryptionType": encryption.get("encryptionType"),
                "kmsKey": encryption.get("kmsKey"),
            }
            if encryption
            else None,
            tags=tag_list(i),
        )
    ]


def _ecr_lifecycle(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "ecr",
            "PutLifecyclePolicy",
            repositoryName=i.get("repository"),
            lifecyclePolicyText=i.get("policy"),
        )
    ]


def _object(i: Inputs, region: str) -> list[Call]:
    tagging = urlencode({t["Key"]: t["Value"] for t in tag_list(i) or []}) or None
    return [
        call(
            "s3",
            "PutObject",
            Bucket=i.get("bucket"),
            Key=i.get("key"),
            Body=(i.get("content") or "").encode(),
            ContentType=i.get("contentType"),
            ServerSideEncryption=i.get("serverSideEncryption"),
            SSEKMSKeyId=i.get("kmsKeyId"),
            Tagging=tagging,
        )
    ]


CONVERTERS: dict[str, Converter] = {
    "aws:s3/bucket:Bucket": _bucket,
    "aws:s3/bucketVersioning:BucketVersioning": _bucket_versioning,
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        _bucket_encryption
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _public_access_block,
    "aws:s3/bucketPolicy:BucketPolicy": _bucket_policy,
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _ownership,
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _lifecycle,
    "aws:s3/bucketObject:BucketObject": _object,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:ecr/repository:Repository": _repository,
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": _ecr_lifecycle,
}
