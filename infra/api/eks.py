"""The calls pulumi-aws makes for EKS (cluster, nodes, add-ons, access) and the VPC."""

from __future__ import annotations

from infra.api.request import Call, Converter, Inputs, call


def _cluster(i: Inputs, region: str) -> list[Call]:
    vpc = i.get("vpcConfig") or {}
    encryption = i.get("encryptionConfig") or {}
    access = i.get("accessConfig") or {}
    return [
        call(
            "eks",
            "CreateCluster",
            name=i.get("name"),
            version=i.get("version"),
            roleArn=i.get("roleArn"),
            resourcesVpcConfig={
                "subnetIds": vpc.get("subnetIds"),
                "securityGroupIds": vpc.get("securityGroupIds"),
                "endpointPublicAccess": vpc.get("endpointPublicAccess"),
                "endpointPrivateAccess": vpc.get("endpointPrivateAccess"),
                "publicAccessCidrs": vpc.get("publicAccessCidrs"),
            },
            logging={
                "clusterLogging": [{"types": i.get("enabledClusterLogTypes"), "enabled": True}]
            }
            if i.get("enabledClusterLogTypes")
            else None,
            encryptionConfig=[
                {
                    "resources": encryption.get("resources"),
                    "provider": {"keyArn": (encryption.get("provider") or {}).get("keyArn")},
                }
            ]
            if encryption
            else None,
            accessConfig={
                "authenticationMode": access.get("authenticationMode"),
                "bootstrapClusterCreatorAdminPermissions": access.get(
                    "bootstrapClusterCreatorAdminPermissions"
                ),
            }
            if access
            else None,
            tags=i.get("tags") or None,
        )
    ]


def _node_group(i: Inputs, region: str) -> list[Call]:
    scaling = i.get("scalingConfig") or {}
    update = i.get("updateConfig") or {}
    return [
        call(
            "eks",
            "CreateNodegroup",
            clusterName=i.get("clusterName"),
            nodegroupName=i.get("nodeGroupName"),
            scalingConfig={
                "minSize": scaling.get("minSize"),
                "maxSize": scaling.get("maxSize"),
                "desiredSize": scaling.get("desiredSize"),
            },
            subnets=i.get("subnetIds"),
            instanceTypes=i.get("instanceTypes"),
            amiType=i.get("amiType"),
            nodeRole=i.get("nodeRoleArn"),
            updateConfig={"maxUnavailable": update.get("maxUnavailable")} if update else None,
            tags=i.get("tags") or None,
        )
    ]


def _addon(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "eks",
            "CreateAddon",
            clusterName=i.get("clusterName"),
            addonName=i.get("addonName"),
            configurationValues=i.get("configurationValues"),
            resolveConflicts=i.get("resolveConflictsOnCreate"),
            tags=i.get("tags") or None,
        )
    ]


def _access_entry(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "eks",
            "CreateAccessEntry",
            clusterName=i.get("clusterName"),
            principalArn=i.get("principalArn"),
            type=i.get("type"),
            tags=i.get("tags") or None,
        )
    ]


def _access_policy(i: Inputs, region: str) -> list[Call]:
    scope = i.get("accessScope") or {}
    return [
        call(
            "eks",
            "AssociateAccessPolicy",
            clusterName=i.get("clusterName"),
            principalArn=i.get("principalArn"),
            policyArn=i.get("policyArn"),
            accessScope={"type": scope.get("type"), "namespaces": scope.get("namespaces")},
        )
    ]


def _vpc(i: Inputs, region: str) -> list[Call]:
    return [call("ec2", "CreateVpc", CidrBlock=i.get("cidrBlock"))]


def _subnet(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "ec2",
            "CreateSubnet",
            VpcId=i.get("vpcId"),
            CidrBlock=i.get("cidrBlock"),
            AvailabilityZone=i.get("availabilityZone"),
        )
    ]


def _nat_gateway(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "ec2",
            "CreateNatGateway",
            AllocationId=i.get("allocationId"),
            SubnetId=i.get("subnetId"),
        )
    ]


def _eip(i: Inputs, region: str) -> list[Call]:
    return [call("ec2", "AllocateAddress", Domain=i.get("domain"))]


def _route_table_association(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "ec2",
            "AssociateRouteTable",
            RouteTableId=i.get("routeTableId"),
            SubnetId=i.get("subnetId"),
        )
    ]


CONVERTERS: dict[str, Converter] = {
    "aws:eks/cluster:Cluster": _cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:eks/addon:Addon": _addon,
    "aws:eks/accessEntry:AccessEntry": _access_entry,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _access_policy,
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/natGateway:NatGateway": _nat_gateway,
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _route_table_association,
}
