"""Security rules: encryption, public access, least privilege, alarms, hardened workloads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from infra.rules.base import (
    ALARM,
    BUCKET,
    BUCKET_PAB,
    BUCKET_POLICY,
    BUCKET_SSE,
    BUCKET_VERSIONING,
    ECR_REPOSITORY,
    EKS_CLUSTER,
    ENDPOINT,
    ENDPOINT_CONFIG,
    ENVIRONMENT_TAG,
    K8S_SERVICE,
    KMS_KEY,
    READ_ONLY_PREFIXES,
    ROLE,
    ROLE_POLICY,
    SAGEMAKER_VPC_ACTIONS,
    UNSCOPABLE_ACTIONS,
    WORKLOADS,
    Finding,
    Resource,
    dig,
    finding,
    for_bucket,
    listify,
    of_type,
    policy_documents,
    statements,
)


def rule_bucket_encrypted(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket has default SSE-KMS encryption."""
    for b in of_type(resources, BUCKET):
        ok = any(
            dig(c.inputs, "rules", 0, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            in ("aws:kms", "aws:kms:dsse")
            for c in for_bucket(resources, BUCKET_SSE, b)
        )
        if not ok:
            yield finding("bucket_encrypted", b, "no SSE-KMS default encryption")


def rule_bucket_versioned(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket keeps object versions."""
    for b in of_type(resources, BUCKET):
        ok = any(
            dig(v.inputs, "versioningConfiguration", "status") == "Enabled"
            for v in for_bucket(resources, BUCKET_VERSIONING, b)
        )
        if not ok:
            yield finding("bucket_versioned", b, "versioning is not enabled")


def rule_bucket_public_access_blocked(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket has all four public access block settings on."""
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    for b in of_type(resources, BUCKET):
        ok = any(
            all(p.inputs.get(f) is True for f in flags)
            for p in for_bucket(resources, BUCKET_PAB, b)
        )
        if not ok:
            yield finding("bucket_public_access_blocked", b, "public access is not fully blocked")


def rule_bucket_tls_only(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every bucket policy denies requests without TLS."""
    for b in of_type(resources, BUCKET):
        ok = False
        for p in for_bucket(resources, BUCKET_POLICY, b):
            for st in statements(p.inputs.get("policy")):
                cond = dig(st, "Condition", "Bool", "aws:SecureTransport")
                if st.get("Effect") == "Deny" and str(cond).lower() == "false":
                    ok = True
        if not ok:
            yield finding("bucket_tls_only", b, "no policy denies aws:SecureTransport=false")


def rule_ecr_scan_on_push(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every ECR repository scans images on push."""
    for r in of_type(resources, ECR_REPOSITORY):
        if dig(r.inputs, "imageScanningConfiguration", "scanOnPush") is not True:
            yield finding("ecr_scan_on_push", r, "scan on push is off")


def rule_ecr_immutable_tags(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every ECR repository has immutable tags."""
    for r in of_type(resources, ECR_REPOSITORY):
        if r.inputs.get("imageTagMutability") != "IMMUTABLE":
            yield finding("ecr_immutable_tags", r, "tags are mutable")


def rule_kms_rotation(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every KMS key rotates."""
    for k in of_type(resources, KMS_KEY):
        if k.inputs.get("enableKeyRotation") is not True:
            yield finding("kms_rotation", k, "key rotation is off")


def rule_iam_no_wildcard_actions(resources: Sequence[Resource]) -> Iterator[Finding]:
    """No Allow statement grants ``*`` or ``service:*`` actions (or uses NotAction)."""
    for r, _kind, doc in policy_documents(resources):
        for st in statements(doc):
            if st.get("Effect") != "Allow":
                continue
            if "NotAction" in st:
                yield finding("iam_no_wildcard_actions", r, "Allow with NotAction")
            for action in listify(st.get("Action")):
                if action == "*" or action.endswith(":*"):
                    yield finding("iam_no_wildcard_actions", r, f"allows {action!r}")


def _sagemaker_roles(resources: Sequence[Resource]) -> set[str]:
    """Names of the roles SageMaker assumes (their trust policy names sagemaker.amazonaws.com)."""
    return {
        str(r.inputs.get("name"))
        for r in of_type(resources, ROLE)
        if any(
            "sagemaker.amazonaws.com" in listify(dig(st, "Principal", "Service"))
            for st in statements(r.inputs.get("assumeRolePolicy"))
        )
    }


def rule_iam_no_writes_on_star(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Identity policies grant on ``*`` only reads or actions AWS cannot scope to a resource
    (and, in a role SageMaker assumes, the network-interface actions of its VPC policy)."""
    sagemaker_roles = _sagemaker_roles(resources)
    for r, kind, doc in policy_documents(resources):
        if kind != "identity":
            continue  # in key policies "*" means "this key"; trust policies have no Resource
        unscopable = UNSCOPABLE_ACTIONS
        if r.type == ROLE_POLICY and r.inputs.get("role") in sagemaker_roles:
            unscopable = UNSCOPABLE_ACTIONS | SAGEMAKER_VPC_ACTIONS
        for st in statements(doc):
            if st.get("Effect") != "Allow" or "*" not in listify(st.get("Resource")):
                continue
            for action in listify(st.get("Action")):
                verb = action.split(":", 1)[-1]
                if action not in unscopable and not verb.startswith(READ_ONLY_PREFIXES):
                    yield finding("iam_no_writes_on_star", r, f"allows {action} on '*'")


def rule_alarm_actions_enabled(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every alarm notifies someone: actions enabled and at least one alarm action."""
    for a in of_type(resources, ALARM):
        if a.inputs.get("actionsEnabled") is False or not a.inputs.get("alarmActions"):
            yield finding("alarm_actions_enabled", a, "alarm has no enabled actions")


def rule_endpoint_has_alarms(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Every SageMaker endpoint and Kubernetes service is watched by alarms with actions."""
    alarms = [
        a
        for a in of_type(resources, ALARM)
        if a.inputs.get("actionsEnabled", True) is not False and a.inputs.get("alarmActions")
    ]
    watched = {
        (dim, value) for a in alarms for dim, value in (a.inputs.get("dimensions") or {}).items()
    }
    for e in of_type(resources, ENDPOINT):
        if ("EndpointName", e.inputs.get("name")) not in watched:
            yield finding("endpoint_has_alarms", e, "no alarm with actions watches it")
    for s in of_type(resources, K8S_SERVICE):
        if ("Service", dig(s.inputs, "metadata", "name")) not in watched:
            yield finding("endpoint_has_alarms", s, "no alarm with actions watches it")


def rule_endpoint_auto_rollback(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Blue/green endpoint updates roll back on alarms."""
    for e in of_type(resources, ENDPOINT):
        policy = dig(e.inputs, "deploymentConfig", "blueGreenUpdatePolicy")
        alarms = dig(e.inputs, "deploymentConfig", "autoRollbackConfiguration", "alarms")
        if policy is not None and not alarms:
            yield finding("endpoint_auto_rollback", e, "blue/green update without rollback")


def rule_data_capture_in_prod(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Production endpoint configurations capture every request."""
    for c in of_type(resources, ENDPOINT_CONFIG):
        env = str((c.inputs.get("tags") or {}).get(ENVIRONMENT_TAG, ""))
        if not env.startswith("prod"):
            continue
        capture = c.inputs.get("dataCaptureConfig") or {}
        if (
            capture.get("enableCapture") is not True
            or capture.get("initialSamplingPercentage") != 100
        ):
            yield finding("data_capture_in_prod", c, "production must capture 100%")


def rule_eks_secrets_encrypted(resources: Sequence[Resource]) -> Iterator[Finding]:
    """EKS clusters envelope-encrypt Kubernetes secrets with KMS."""
    for c in of_type(resources, EKS_CLUSTER):
        configs = c.inputs.get("encryptionConfig")
        if not configs or "secrets" not in (dig(configs, "resources") or []):
            yield finding("eks_secrets_encrypted", c, "secrets are not KMS-encrypted")


def rule_workloads_non_root(resources: Sequence[Resource]) -> Iterator[Finding]:
    """Kubernetes workloads run as non-root, without privilege escalation, read-only root FS."""
    for w in resources:
        if w.type not in WORKLOADS:
            continue
        pod = dig(w.inputs, "spec", "template", "spec") or {}
        pod_non_root = dig(pod, "securityContext", "runAsNonRoot") is True
        for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
            sc = c.get("securityContext") or {}
            problems = []
            if not (sc.get("runAsNonRoot") is True or (pod_non_root and "runAsNonRoot" not in sc)):
                problems.append("may run as root")
            if sc.get("runAsUser") == 0:
                problems.append("runs as uid 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("allows privilege escalation")
            if sc.get("privileged") is True:
                problems.append("is privileged")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append("has a writable root filesystem")
            if problems:
                yield finding(
                    "workloads_non_root", w, f"container {c.get('name')}: {', '.join(problems)}"
                )
