"""EKS settings: Kubernetes version, nodes, API endpoint access, Service and pod sizes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError
from core.instances import EKS_NODE, check_instance_type
from infra.config.keys import CIDR_RE, Reader, cidr

SUPPORTED_KUBERNETES = ("1.30", "1.31", "1.32", "1.33", "1.34")
_K8S_QUANTITY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:m|Ki|Mi|Gi)?$")
# arn:<partition>:acm:<region>:<account>:certificate/<id> (ACM's ARN format, AWS General
# Reference, "Amazon Resource Names"); the id is a UUID.
_ACM_CERTIFICATE_RE = re.compile(
    r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$"
)


@dataclass(frozen=True)
class Eks:
    """EKS cluster and workload settings (used only when ``target`` is ``eks``)."""

    kubernetes_version: str
    node_instance_type: str
    node_min_size: int
    node_max_size: int
    public_access_cidrs: tuple[str, ...]
    service_internal: bool
    service_certificate_arn: str
    pod_cpu: str
    pod_memory: str


def parse_eks(r: Reader, region: str, target: str) -> Eks:
    """``kubernetesVersion``, ``node*``, ``clusterPublicAccessCidrs``, ``serviceInternal``,
    ``serviceCertificateArn``, ``podCpu`` and ``podMemory``.

    An internet-facing Service must terminate TLS: over plain HTTP every API key and every
    row would cross the internet readable by anyone on the path.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    version = r.choice("kubernetesVersion", SUPPORTED_KUBERNETES)
    node_type = check_instance_type(
        r.string("nodeInstanceType"), "mlship:nodeInstanceType", EKS_NODE
    )
    eks = Eks(
        kubernetes_version=version,
        node_instance_type=node_type,
        node_min_size=r.integer("nodeMinSize", 1, 100),
        node_max_size=r.integer("nodeMaxSize", 1, 100),
        public_access_cidrs=tuple(
            cidr(c, "clusterPublicAccessCidrs")
            for c in r.strings("clusterPublicAccessCidrs", CIDR_RE, "a CIDR such as 203.0.113.0/24")
        ),
        service_internal=r.boolean("serviceInternal"),
        service_certificate_arn=r.string("serviceCertificateArn").strip(),
        pod_cpu=r.string("podCpu"),
        pod_memory=r.string("podMemory"),
    )
    if eks.node_max_size < eks.node_min_size:
        raise ConfigError(
            f"mlship:nodeMaxSize ({eks.node_max_size}) is below mlship:nodeMinSize "
            f"({eks.node_min_size}): raise the maximum."
        )
    if "0.0.0.0/0" in eks.public_access_cidrs:
        raise ConfigError(
            "mlship:clusterPublicAccessCidrs contains 0.0.0.0/0: list the CIDRs of your "
            "offices or CI runners, or leave it empty for a private-only API endpoint."
        )
    _check_certificate(eks, region, target)
    for key, value in (("podCpu", eks.pod_cpu), ("podMemory", eks.pod_memory)):
        if not _K8S_QUANTITY_RE.match(value):
            raise ConfigError(
                f"mlship:{key} is {value!r}: give a Kubernetes quantity such as 500m or 1Gi."
            )
    return eks


def _check_certificate(eks: Eks, region: str, target: str) -> None:
    arn = eks.service_certificate_arn
    if not arn:
        if not eks.service_internal and target == "eks":
            raise ConfigError(
                "mlship:serviceInternal is false without mlship:serviceCertificateArn: an "
                "internet-facing Service over plain HTTP sends API keys and rows in clear "
                "text. Set mlship:serviceCertificateArn to an ACM certificate for the "
                "endpoint's domain (the load balancer then serves HTTPS on 443), or keep the "
                "Service internal."
            )
        return
    match = _ACM_CERTIFICATE_RE.match(arn)
    if match is None:
        raise ConfigError(
            f"mlship:serviceCertificateArn is {arn!r}: give an ACM certificate ARN, "
            "arn:aws:acm:<region>:<account>:certificate/<id>."
        )
    # A load balancer can only use an ACM certificate of its own region (ACM User Guide,
    # "Services integrated with ACM": Elastic Load Balancing).
    if match["region"] != region:
        raise ConfigError(
            f"mlship:serviceCertificateArn is in {match['region']}, the stack in {region}: "
            f"a load balancer uses certificates of its own region; request or import the "
            f"certificate in {region}."
        )
