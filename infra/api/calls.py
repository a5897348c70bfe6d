"""The AWS API calls each planned resource becomes: what pulumi-aws sends on ``pulumi up``.

pulumi-aws is the Terraform AWS provider underneath; each converter (one module per service
group: ``sagemaker``, ``monitoring``, ``storage``, ``iam``, ``eks``) mirrors the provider's create
(and, for the endpoint, update) of one resource type: the same operations, with the planned
inputs under the API's member names. Values the cloud computes (ids of resources not yet
created) are left out rather than guessed; :data:`NOT_CALLED` lists the resource types whose
calls are not checked, each with why.
"""

from __future__ import annotations

from infra.api import automation, eks, iam, monitoring, sagemaker, storage
from infra.api.request import Call, Converter, Inputs

CALLS: dict[str, Converter] = {
    **sagemaker.CONVERTERS,
    **monitoring.CONVERTERS,
    **storage.CONVERTERS,
    **iam.CONVERTERS,
    **eks.CONVERTERS,
    **automation.CONVERTERS,
}
# Planned AWS types whose calls are not checked, and why (a test keeps every type in one place).
NOT_CALLED: dict[str, str] = {
    # CreateInternetGateway and CreateRouteTable take nothing the program sets beyond ids the
    # cloud assigns (the VPC, the gateway); their routes are CreateRoute with those ids.
    "aws:ec2/internetGateway:InternetGateway": "no planned parameter (ids only)",
    "aws:ec2/routeTable:RouteTable": "no planned parameter (ids only)",
}


def calls_for(type_: str, inputs: Inputs, region: str) -> list[Call] | None:
    """The calls a resource of ``type_`` becomes, or None for a type this module does not know."""
    converter = CALLS.get(type_)
    return converter(inputs, region) if converter is not None else None
