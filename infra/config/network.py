"""Network settings: a new VPC from a CIDR, or existing subnets and security groups."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError
from infra.config.keys import Reader, cidr

_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_RE = re.compile(r"^sg-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class Network:
    """Create a VPC from ``vpc_cidr``, or use the given subnets and security groups."""

    vpc_cidr: str
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]

    @property
    def create_vpc(self) -> bool:
        """True when no subnets are given (only the EKS target creates a VPC)."""
        return not self.subnet_ids


def parse_network(r: Reader, *, target: str, serverless: bool) -> Network:
    """``vpcCidr``, ``subnetIds`` and ``securityGroupIds``.

    Raises:
        ConfigError: naming the first invalid key, the problem and the fix.
    """
    network = Network(
        vpc_cidr=cidr(r.string("vpcCidr"), "vpcCidr"),
        subnet_ids=r.strings("subnetIds", _SUBNET_RE, "a subnet id such as subnet-0abc1234"),
        security_group_ids=r.strings(
            "securityGroupIds", _SG_RE, "a security group id such as sg-0abc1234"
        ),
    )
    if network.subnet_ids and len(network.subnet_ids) < 2:
        raise ConfigError(
            "mlship:subnetIds lists one subnet: give at least two, in different "
            "availability zones, or none to create a VPC."
        )
    if network.subnet_ids and serverless and target == "sagemaker":
        raise ConfigError(
            "mlship:subnetIds is set for a serverless endpoint: SageMaker Serverless "
            "Inference cannot run in a VPC. Remove the subnets or use instances."
        )
    if network.subnet_ids and not network.security_group_ids and target == "sagemaker":
        raise ConfigError(
            "mlship:securityGroupIds is empty while mlship:subnetIds is set: a SageMaker "
            "model in a VPC needs at least one security group id."
        )
    return network
