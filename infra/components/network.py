"""Network: a VPC with public and private subnets in two zones, for the EKS target.

Nodes run in the private subnets and reach AWS APIs through one NAT gateway; load balancers go
in the public (internet-facing) or private (internal) subnets, found by the standard
``kubernetes.io/role/*elb`` tags.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

RESOURCE_TYPE = "mlship:network:Network"
ZONE_SUFFIXES = ("a", "b")
# Subnet tags the AWS load balancer controller reads to place internet-facing / internal LBs.
ELB = "kubernetes.io/role/elb"
INTERNAL_ELB = "kubernetes.io/role/internal-elb"


def subnet_cidrs(vpc_cidr: str) -> tuple[list[str], list[str]]:
    """Split the VPC into four equal blocks: two public, two private (one per zone)."""
    network = ipaddress.ip_network(vpc_cidr)
    blocks = [str(b) for b in network.subnets(prefixlen_diff=2)]
    return blocks[:2], blocks[2:]


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of :class:`Network`.

    Attributes:
        cidr: The VPC's CIDR block.
        region: AWS region (zones are ``<region>a`` and ``<region>b``).
        cluster_name: EKS cluster the subnets are tagged for.
        tags: Tags on every taggable child.
    """

    cidr: str
    region: str
    cluster_name: str
    tags: dict[str, str] = field(default_factory=dict)


class Network(pulumi.ComponentResource):
    """VPC, internet gateway, NAT gateway, route tables, two public and two private subnets."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": name},
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={**args.tags, "Name": name}, opts=child
        )
        public_cidrs, private_cidrs = subnet_cidrs(args.cidr)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags={**args.tags, "Name": f"{name}-public"},
            opts=child,
        )
        public_subnets = self._subnets(
            name, args, "public", public_cidrs, vpc, public_rt, {**cluster_tag, ELB: "1"}
        )
        self.public_subnet_ids = [subnet.id for subnet in public_subnets]
        eip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", tags=args.tags, opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=eip.id,
            subnet_id=public_subnets[0].id,
            tags={**args.tags, "Name": name},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
        )
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-rt",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            tags={**args.tags, "Name": f"{name}-private"},
            opts=child,
        )
        private_tags = {**cluster_tag, INTERNAL_ELB: "1"}
        private_subnets = self._subnets(
            name, args, "private", private_cidrs, vpc, private_rt, private_tags
        )
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]
        self.vpc_id = vpc.id
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

    def _subnets(
        self,
        name: str,
        args: NetworkArgs,
        tier: str,
        cidrs: list[str],
        vpc: aws.ec2.Vpc,
        route_table: aws.ec2.RouteTable,
        tags: dict[str, str],
    ) -> list[aws.ec2.Subnet]:
        """One subnet per zone with its route-table association. Instances never get public
        addresses, not even in the public tier (only load balancers live there)."""
        child = pulumi.ResourceOptions(parent=self)
        subnets = []
        for suffix, cidr in zip(ZONE_SUFFIXES, cidrs, strict=True):
            subnet = aws.ec2.Subnet(
                f"{name}-{tier}-{suffix}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=f"{args.region}{suffix}",
                map_public_ip_on_launch=False,
                tags={**args.tags, **tags},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{tier}-{suffix}-rt",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=child,
            )
            subnets.append(subnet)
        return subnets
