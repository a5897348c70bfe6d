"""The calls pulumi-aws makes for IAM roles, their policies and OIDC providers."""

from __future__ import annotations

from infra.api.request import Call, Converter, Inputs, call, tag_list


def _role(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "iam",
            "CreateRole",
            RoleName=i.get("name"),
            AssumeRolePolicyDocument=i.get("assumeRolePolicy"),
            Description=i.get("description"),
            MaxSessionDuration=i.get("maxSessionDuration"),
            Tags=tag_list(i),
        )
    ]


def _role_policy(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "iam",
            "PutRolePolicy",
            RoleName=i.get("role"),
            PolicyName=i.get("name"),
            PolicyDocument=i.get("policy"),
        )
    ]


def _role_policy_attachment(i: Inputs, region: str) -> list[Call]:
    return [call("iam", "AttachRolePolicy", RoleName=i.get("role"), PolicyArn=i.get("policyArn"))]


def _oidc_provider(i: Inputs, region: str) -> list[Call]:
    return [
        call(
            "iam",
            "CreateOpenIDConnectProvider",
            Url=i.get("url"),
            ClientIDList=i.get("clientIdLists"),
            ThumbprintList=i.get("thumbprintLists"),
            Tags=tag_list(i),
        )
    ]


CONVERTERS: dict[str, Converter] = {
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _role_policy_attachment,
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
}
