"""Pulumi mocks that record every resource and stand in for what the cloud would compute.

The placeholders follow AWS's formats (ARNs, ids, URLs), so the policies built from them can be
linted, but they are not real: account ``123456789012`` is AWS's documentation account.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

MOCK_ACCOUNT = "123456789012"
CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
SECRET_VERSION = "aws:secretsmanager/getSecretVersion:getSecretVersion"  # noqa: S105 (a type token)
# What the offline plan reads from a secret: a stand-in, never a real value.
MOCK_SECRET = "mock-secret-value"  # noqa: S105 (a stand-in for the plan)
# Resources the provider names when the program does not (Pulumi's auto-naming: the logical
# name plus a random suffix, chosen at check time, so the name is among the inputs `pulumi up`
# sends). The plan records the mock's stand-in name there too; the property per type token.
AUTONAMED = {
    "aws:sagemaker/model:Model": "name",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "name",
    "aws:iam/rolePolicy:RolePolicy": "name",
    "aws:appautoscaling/policy:Policy": "name",
    "aws:eks/nodeGroup:NodeGroup": "nodeGroupName",
}


@dataclass
class Recorded:
    """One registered resource: its type token, logical name, URN, parent and inputs."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool = False
    provider: str = ""
    retain_on_delete: bool = False


def _suffix(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:7]


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers ``getCallerIdentity`` and invents AWS-shaped outputs for each resource type."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.by_name: dict[tuple[str, str], dict[str, Any]] = {}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == CALLER_IDENTITY:
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/mock",
                "userId": "AIDAMOCKUSER",
                "id": MOCK_ACCOUNT,
            }, []
        if args.token == SECRET_VERSION:
            secret_id = str(args.args.get("secretId"))
            arn = f"arn:aws:secretsmanager:{self.region}:{MOCK_ACCOUNT}:secret:{secret_id}-AbCdEf"
            return {"arn": arn, "id": arn, "secretString": MOCK_SECRET, "versionId": "v1"}, []
        raise NotImplementedError(f"the offline plan has no mock for the function {args.token}")

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        computed = self._computed(args.typ, args.name, args.inputs)
        state.update(computed)
        self.by_name[(args.typ, args.name)] = computed
        resource_id = computed.get("id") or f"{args.name}-{_suffix(args.name)}"
        return str(resource_id), state

    def _computed(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        r, a = self.region, MOCK_ACCOUNT
        out: dict[str, Any] = {}
        if typ.startswith("aws:") and "name" not in inputs:
            out["name"] = f"{name}-{_suffix(name)}"  # Pulumi's auto-naming: logical name + suffix
        nm = inputs.get("name") or out.get("name")
        if typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or f"{name}-{_suffix(name)}"
            out = {"id": bucket, "bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        elif typ == "aws:kms/key:Key":
            key_id = _uuid(name)
            out = {"id": key_id, "keyId": key_id, "arn": f"arn:aws:kms:{r}:{a}:key/{key_id}"}
        elif typ == "aws:ecr/repository:Repository":
            out |= {
                "id": nm,
                "arn": f"arn:aws:ecr:{r}:{a}:repository/{nm}",
                "repositoryUrl": f"{a}.dkr.ecr.{r}.amazonaws.com/{nm}",
            }
        elif typ == "aws:iam/role:Role":
            out |= {"id": nm, "arn": f"arn:aws:iam::{a}:role/{nm}"}
        elif typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = str(inputs.get("url", "")).removeprefix("https://")
            out = {"arn": f"arn:aws:iam::{a}:oidc-provider/{host}"}
        elif typ == "aws:sns/topic:Topic":
            out |= {"arn": f"arn:aws:sns:{r}:{a}:{nm}"}
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            out |= {"arn": f"arn:aws:cloudwatch:{r}:{a}:alarm:{nm}"}
        elif typ.startswith("aws:sagemaker/"):
            kind = {
                "aws:sagemaker/model:Model": "model",
                "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "endpoint-config",
                "aws:sagemaker/endpoint:Endpoint": "endpoint",
            }.get(typ)
            if typ == "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer":
                nm = inputs.get("trackingServerName")
                kind = "mlflow-tracking-server"
            if typ == "aws:sagemaker/pipeline:Pipeline":
                nm = inputs.get("pipelineName")
                kind = "pipeline"
            if kind is not None:
                out |= {"arn": f"arn:aws:sagemaker:{r}:{a}:{kind}/{str(nm).lower()}"}
        elif typ == "aws:scheduler/schedule:Schedule":
            out |= {"arn": f"arn:aws:scheduler:{r}:{a}:schedule/default/{nm}"}
        elif typ == "aws:cloudwatch/eventRule:EventRule":
            out |= {"arn": f"arn:aws:events:{r}:{a}:rule/{nm}"}
        elif typ == "aws:cloudwatch/eventConnection:EventConnection":
            out |= {
                "arn": f"arn:aws:events:{r}:{a}:connection/{nm}/{_uuid(name)}",
                "secretArn": f"arn:aws:secretsmanager:{r}:{a}:secret:events!connection/{nm}",
            }
        elif typ == "aws:cloudwatch/eventApiDestination:EventApiDestination":
            out |= {"arn": f"arn:aws:events:{r}:{a}:api-destination/{nm}/{_uuid(name)}"}
        elif typ == "aws:amp/workspace:Workspace":
            ws = "ws-" + _uuid(name)
            out |= {
                "id": ws,
                "arn": f"arn:aws:aps:{r}:{a}:workspace/{ws}",
                "prometheusEndpoint": f"https://aps-workspaces.{r}.amazonaws.com/workspaces/{ws}/",
            }
        elif typ == "aws:amp/scraper:Scraper":
            scraper = "s-" + _uuid(name)
            out |= {
                "id": scraper,
                "arn": f"arn:aws:aps:{r}:{a}:scraper/{scraper}",
                "roleArn": f"arn:aws:iam::{a}:role/aws-service-role/scraper.aps.amazonaws.com/"
                f"AWSServiceRoleForAmazonPrometheusScraper_{_suffix(name)}",
            }
        elif typ == "aws:eks/cluster:Cluster":
            issuer = f"https://oidc.eks.{r}.amazonaws.com/id/{_suffix(name).upper()}EXAMPLE"
            out |= {
                "id": nm,
                "arn": f"arn:aws:eks:{r}:{a}:cluster/{nm}",
                "endpoint": f"https://{_suffix(name).upper()}.gr7.{r}.eks.amazonaws.com",
                "certificateAuthority": {"data": base64.b64encode(b"mock-ca").decode()},
                "identities": [{"oidcs": [{"issuer": issuer}]}],
            }
        elif typ.startswith("aws:ec2/"):
            prefix = {
                "aws:ec2/vpc:Vpc": "vpc",
                "aws:ec2/subnet:Subnet": "subnet",
                "aws:ec2/internetGateway:InternetGateway": "igw",
                "aws:ec2/natGateway:NatGateway": "nat",
                "aws:ec2/eip:Eip": "eipalloc",
                "aws:ec2/routeTable:RouteTable": "rtb",
            }.get(typ, "ec2")
            out = {"id": f"{prefix}-0{_suffix(name)}{_suffix(name[::-1])}"[:21]}
        return out


def _uuid(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class RecordingMonitor(MockMonitor):
    """A mock monitor that also remembers each resource's parent and inputs, in order."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Recorded] = []
        self._mocks = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            from pulumi.runtime import rpc

            inputs = rpc.deserialize_properties(request.object)
            autonamed = AUTONAMED.get(request.type)
            if autonamed is not None and autonamed not in inputs:
                inputs[autonamed] = self._mocks.by_name[(request.type, request.name)]["name"]
            self.recorded.append(
                Recorded(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=_plain(inputs),
                    protect=bool(request.protect),
                    provider=request.provider,
                    retain_on_delete=bool(request.retainOnDelete),
                )
            )
        return response


def _plain(value: Any) -> Any:
    """Inputs as plain JSON-like data: no Pulumi-internal ``__`` keys, and integral numbers as
    ints (the wire format carries every number as a float; the provider schemas say which are
    integers, and every integral value mlship sends is one)."""
    if isinstance(value, dict):
        from pulumi.runtime import rpc

        # Pulumi's wire format marks a secret as {<signature key>: <secret signature>, "value"}.
        # Offline, the only secrets are the mocks' stand-ins (MOCK_SECRET; the plan refuses
        # secret config), so the value is kept for the rules and the request checks.
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
