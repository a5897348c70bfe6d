"""StackConfig: the declared keys, the committed stack files, and every refusal."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from core.errors import ConfigError
from infra.config import KEYS, KEYS_BY_NAME, StackConfig, declared_keys, reference_table
from infra.config.keys import Reader
from infra.plan import ROOT, read_stack_config
from tests.infra.conftest import CERTIFICATE_ARN

CONFIG_PACKAGE = ROOT / "infra" / "config"
READER_METHODS = {name for name in vars(Reader) if not name.startswith("_")}

VALID = {
    "environment": "dev",
    "imageTag": "abc123",
    "githubRepository": "example-org/mlship",
}


def _parse(overrides: dict[str, str], *, region: str | None = "eu-west-1") -> StackConfig:
    return StackConfig.parse({**VALID, **overrides}, project="mlship", stack="t", region=region)


def test_pulumi_yaml_declares_every_key_with_type_default_and_description() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {f"mlship:{k.name}" for k in KEYS}
    for key in KEYS:
        entry = declared[f"mlship:{key.name}"]
        assert entry["type"] == key.type
        assert entry["description"] == key.description
        assert entry.get("default") == key.default
        if key.type == "array":
            # Pulumi's project schema types array items as string, integer or boolean.
            assert entry["items"] in ({"type": "string"}, {"type": "integer"})
        # The keys Pulumi's project schema allows in a config type declaration.
        assert set(entry) <= {"type", "items", "description", "secret", "default"}
        assert key.type in ("string", "integer", "boolean", "array")


def keys_read(paths: list[Path]) -> tuple[set[str], list[str]]:
    """Names passed to ``Reader`` methods (``r.integer("instanceCount", ...)``) in ``paths``,
    and the calls whose key is not a string literal (which this check could not see)."""
    names: set[str] = set()
    opaque: list[str] = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in READER_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "r"
            ):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
            else:
                opaque.append(f"{path.name}:{node.lineno}")
    return names, opaque


def test_keys_read_by_the_parsers_are_exactly_the_declared_keys() -> None:
    read, opaque = keys_read(sorted(CONFIG_PACKAGE.glob("*.py")))
    declared = {k.name for k in declared_keys()}
    assert opaque == [], "read keys by literal name so this check sees them"
    assert len(read) >= 40
    assert read - declared == set(), "read in code but not declared in Pulumi.yaml"
    assert declared - read == set(), "declared in Pulumi.yaml but never read"


def test_key_check_sees_an_undeclared_read_and_an_unread_declaration(tmp_path: Path) -> None:
    module = tmp_path / "section.py"
    module.write_text(
        "def parse(r, name):\n"
        "    r.integer('instanceCount', 1, 100)\n"
        "    r.string('instanceTyp')\n"
        "    r.boolean(name)\n"
    )
    read, opaque = keys_read([module])
    assert read == {"instanceCount", "instanceTyp"}
    assert read - {k.name for k in declared_keys()} == {"instanceTyp"}
    assert opaque == ["section.py:4"]


def test_reading_an_undeclared_key_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match="instanceTyp"):
        Reader({}).string("instanceTyp")


def test_declaration_without_type_or_description_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: x\nconfig:\n  mlship:size:\n    type: integer\n    default: 1\n"
    )
    with pytest.raises(ConfigError, match=r"mlship:size without a type .* or a description"):
        declared_keys(tmp_path)


def test_readme_reference_table_is_the_declaration() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- section:infra -->", 1)[1].split("<!-- /section:infra -->", 1)[0]
    table = reference_table()
    assert table.count("\n") == len(declared_keys()) + 2
    documented = [line for line in section.splitlines() if line.startswith("| `mlship:")]
    assert documented == table.splitlines()[2:], (
        "README's stack configuration reference differs from Pulumi.yaml; replace it with "
        f"infra.config.reference_table():\n{table}"
    )


# Integer keys whose description states their range, e.g. "(0-3600 s)": the other settings
# that key needs to be read at all, and how a value just below the range is refused.
RANGED: dict[str, tuple[dict[str, str], str]] = {
    "serverlessMemoryMb": ({"dataCapturePercent": "0"}, "use 1024, 2048"),
    "serverlessMaxConcurrency": ({"serverlessMemoryMb": "1024", "dataCapturePercent": "0"}, ""),
    "rolloutBakeSeconds": ({"rolloutTimeoutSeconds": "7200"}, ""),
    "rolloutTimeoutSeconds": ({}, ""),
    "rolloutTerminationWaitSeconds": ({"rolloutTimeoutSeconds": "7200"}, ""),
    # Read only when scheduled batch scoring is on.
    "batchInstanceCount": ({"batchSchedule": "rate(1 day)"}, ""),
    "batchMaxPayloadMb": ({"batchSchedule": "rate(1 day)"}, ""),
    "batchCheckVolumeGb": ({"batchSchedule": "rate(1 day)"}, ""),
    "batchCheckMaxRuntimeMinutes": ({"batchSchedule": "rate(1 day)"}, ""),
    "batchIdColumns": ({"batchSchedule": "rate(1 day)"}, ""),
    "alarmMissingPercent": ({}, ""),
    "alarmOutOfRangePercent": ({}, ""),
    "rolloutShadowPercent": ({}, ""),
    "rolloutMaxChallengerErrorPercent": ({}, ""),
}


def test_every_range_in_a_description_is_checked_here() -> None:
    stated = {
        k.name
        for k in declared_keys()
        if k.type == "integer" and re.search(r"\((\d+)-(\d+)\b", k.description)
    }
    assert stated == set(RANGED)


@pytest.mark.parametrize("name", sorted(RANGED))
def test_description_range_is_what_the_parser_accepts(name: str) -> None:
    """The documented range (README, Pulumi.yaml) is the one StackConfig enforces."""
    match = re.search(r"\((\d+)-(\d+)\b", KEYS_BY_NAME[name].description)
    assert match is not None
    low, high = int(match.group(1)), int(match.group(2))
    extra, below = RANGED[name]
    for value in (low, high):
        _parse({**extra, name: str(value)})
    for value, hint in ((low - 1, below or "it must be between"), (high + 1, "must be between")):
        with pytest.raises(ConfigError, match=f"^mlship:{name} is {value}: .*{hint}"):
            _parse({**extra, name: str(value)})


PYTHON_TYPES: dict[str, type] = {"string": str, "integer": int, "boolean": bool, "array": list}


@pytest.mark.parametrize("path", sorted(ROOT.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_stack_file_values_have_the_declared_types(path: Path) -> None:
    """What the Pulumi CLI checks before running: each value matches its declared type."""
    config = yaml.safe_load(path.read_text())["config"]
    for name, value in config.items():
        namespace, key = name.split(":", 1)
        if namespace != "mlship":
            continue
        declared = KEYS_BY_NAME[key].type
        assert type(value) is PYTHON_TYPES[declared], (name, value)
        if isinstance(value, list):
            assert all(isinstance(item, str) for item in value), name


@pytest.mark.parametrize("path", sorted(ROOT.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_stack_files_use_only_declared_keys(path: Path) -> None:
    raw = read_stack_config(path.name.split(".")[1])
    assert "aws:region" in raw
    mlship = {k.split(":", 1)[1] for k in raw if k.startswith("mlship:")}
    assert mlship <= set(KEYS_BY_NAME)


def test_defaults_parse_to_a_safe_dev_config() -> None:
    cfg = _parse({})
    assert cfg.target == "sagemaker"
    assert cfg.instance_type == "ml.m5.large"
    assert cfg.serverless is None
    assert cfg.github.environments == ("dev",)
    assert not cfg.is_production


def test_array_and_boolean_values_parse_from_pulumi_strings() -> None:
    cfg = _parse(
        {
            "alertEmails": '["a@example.com", "b@example.com"]',
            "tags": '["team=ml", "cost-center=42"]',
            "mlflowServer": "true",
        }
    )
    assert cfg.alarms.emails == ("a@example.com", "b@example.com")
    assert cfg.tags == {"team": "ml", "cost-center": "42"}
    assert cfg.mlflow_server is True


SUBNETS = '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]'
SGS = '["sg-0123456789abcdef0"]'
PROD = {
    "environment": "prod",
    "instanceCount": "2",
    "autoscalingMinCapacity": "2",
    "dataCapturePercent": "100",
    "alertEmails": '["ops@example.com"]',
    "rolloutStrategy": "canary",
}


@pytest.mark.parametrize(
    ("overrides", "key", "hint"),
    [
        ({"target": "lambda"}, "mlship:target", "sagemaker, eks"),
        ({"environment": "Prod-EU"}, "mlship:environment", "lowercase"),
        ({"environment": ""}, "mlship:environment", "pulumi config set"),
        ({"instanceType": "m5.large"}, "mlship:instanceType", "CreateEndpointConfig does not"),
        # ml.t3 runs processing jobs and notebooks, not endpoints (ProductionVariantInstanceType)
        ({"instanceType": "ml.t3.large"}, "mlship:instanceType", "closest it takes: ml.t2.large"),
        ({"instanceCount": "two"}, "mlship:instanceCount", "whole number"),
        ({"instanceCount": "0"}, "mlship:instanceCount", "between"),
        ({"serverlessMemoryMb": "1500"}, "mlship:serverlessMemoryMb", "1024"),
        (
            {"autoscalingMaxCapacity": "1", "autoscalingMinCapacity": "2", "instanceCount": "2"},
            "mlship:autoscalingMaxCapacity",
            "raise the maximum",
        ),
        ({"instanceCount": "3"}, "mlship:instanceCount", "autoscaling range"),
        ({"imageTag": "latest"}, "mlship:imageTag", "git SHA"),
        ({"imageRepository": "MLship"}, "mlship:imageRepository", "lowercase"),
        ({"modelDataKey": "bundles/model.tar.gz"}, "mlship:modelDataKey", "models/"),
        ({"dataCapturePercent": "101"}, "mlship:dataCapturePercent", "between 0 and 100"),
        ({"alertEmails": '["not-an-email"]'}, "mlship:alertEmails", "e-mail"),
        ({"alertEmails": "ops@example.com"}, "mlship:alertEmails", "YAML list"),
        ({"rolloutStrategy": "blue"}, "mlship:rolloutStrategy", "canary"),
        (
            {
                "rolloutStrategy": "linear",
                "rolloutPercent": "5",
                "instanceCount": "2",
                "autoscalingMaxCapacity": "4",
            },
            "mlship:rolloutPercent",
            "10-50%",
        ),
        (
            {"rolloutStrategy": "canary", "rolloutPercent": "20"},
            "mlship:rolloutPercent",
            "less than one instance",
        ),
        (
            {"rolloutStrategy": "canary", "serverlessMemoryMb": "2048"},
            "mlship:rolloutStrategy",
            "serverless",
        ),
        (
            {"rolloutBakeSeconds": "3600", "rolloutTimeoutSeconds": "3000"},
            "mlship:rolloutTimeoutSeconds",
            "must exceed",
        ),
        ({"rolloutTimeoutSeconds": "60"}, "mlship:rolloutTimeoutSeconds", "between 600"),
        ({"githubRepository": "example-org/*"}, "mlship:githubRepository", "no wildcards"),
        ({"githubRepository": ""}, "mlship:githubRepository", "pulumi config set"),
        (
            {"githubOidcProviderArn": "arn:aws:iam::1:oidc-provider/x"},
            "mlship:githubOidcProviderArn",
            "token.actions.githubusercontent.com",
        ),
        ({"subnetIds": '["subnet-0123456789abcdef0"]'}, "mlship:subnetIds", "at least two"),
        (
            {"subnetIds": '["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]'},
            "mlship:securityGroupIds",
            "security group",
        ),
        ({"vpcCidr": "10.0.0.0/33"}, "mlship:vpcCidr", "CIDR"),
        ({"tags": '["aws:owner=me"]'}, "mlship:tags", "aws:"),
        ({"kubernetesVersion": "1.20"}, "mlship:kubernetesVersion", "1.33"),
        ({"nodeInstanceType": "ml.m5.large"}, "mlship:nodeInstanceType", "EC2"),
        # EC2's own list (botocore's InstanceType): a typo is named with the closest types
        ({"nodeInstanceType": "t3.lage"}, "mlship:nodeInstanceType", "closest it takes: t3.large"),
        (
            {"clusterPublicAccessCidrs": '["0.0.0.0/0"]'},
            "mlship:clusterPublicAccessCidrs",
            "private-only",
        ),
        ({"podMemory": "lots"}, "mlship:podMemory", "quantity"),
        (
            {"target": "eks", "serviceInternal": "false"},
            "mlship:serviceInternal",
            "mlship:serviceCertificateArn to an ACM certificate",
        ),
        (
            {"serviceCertificateArn": "arn:aws:iam::123456789012:server-certificate/api"},
            "mlship:serviceCertificateArn",
            "arn:aws:acm:<region>",
        ),
        (
            {"serviceCertificateArn": CERTIFICATE_ARN.replace("eu-west-1", "us-east-1")},
            "mlship:serviceCertificateArn",
            "request or import the certificate in eu-west-1",
        ),
        ({"mlflowServer": "yes"}, "mlship:mlflowServer", "true or false"),
        ({"logLevel": "TRACE"}, "mlship:logLevel", "INFO"),
        ({"instanceTyp": "ml.m5.large"}, "mlship:instanceTyp", "fix the spelling"),
        ({**PROD, "dataCapturePercent": "50"}, "mlship:dataCapturePercent", "100"),
        (
            {**PROD, "instanceCount": "1", "autoscalingMinCapacity": "1"},
            "mlship:rolloutPercent",
            "raise mlship:instanceCount",
        ),
        (
            {"serverlessMemoryMb": "2048", "subnetIds": SUBNETS, "securityGroupIds": SGS},
            "mlship:subnetIds",
            "cannot run in a VPC",
        ),
        (
            {"serverlessMemoryMb": "2048", "dataCapturePercent": "10"},
            "mlship:dataCapturePercent",
            "Serverless",
        ),
        ({**PROD, "rolloutStrategy": "all_at_once"}, "mlship:rolloutStrategy", "canary or linear"),
        ({**PROD, "alertEmails": "[]"}, "mlship:alertEmails", "at least one"),
        (
            {"instanceType": "ml.t2.medium", "autoscalingMaxCapacity": "2"},
            "mlship:instanceType",
            "does not auto scale burstable instances",
        ),
        (
            {"instanceType": "ml.t2.xlarge", "autoscalingMaxCapacity": "3"},
            "mlship:instanceType",
            "ml.m5.large",
        ),
        ({"rolloutTimeoutSeconds": "28800"}, "mlship:rolloutTimeoutSeconds", "and 14400"),
    ],
)
def test_invalid_value_names_key_problem_and_fix(
    overrides: dict[str, str], key: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _parse(overrides)
    message = str(excinfo.value)
    assert message.startswith(key), message
    assert hint in message, message


def test_region_is_required() -> None:
    with pytest.raises(ConfigError, match="aws:region"):
        _parse({}, region=None)


def test_burstable_instances_are_fine_for_a_fixed_fleet_or_on_eks() -> None:
    fixed = _parse({"instanceType": "ml.t2.medium", "autoscalingMaxCapacity": "1"})
    assert not fixed.autoscaling.scales
    eks = _parse({"target": "eks", "instanceType": "ml.t2.medium", "autoscalingMaxCapacity": "4"})
    assert eks.autoscaling.scales


def test_valid_production_config_is_accepted() -> None:
    cfg = _parse(PROD)
    assert cfg.is_production
    assert cfg.rollout.strategy == "canary"


def test_missing_stack_file_lists_the_stacks() -> None:
    with pytest.raises(ConfigError, match=r"Pulumi\.nope\.yaml.*dev"):
        read_stack_config("nope")


def test_secret_values_are_refused_offline(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n  mlship:apiKeysSecret:\n    secure: AAABAMock\n"
    )
    with pytest.raises(ConfigError, match="secret"):
        read_stack_config("s", tmp_path)


def test_readme_documents_every_key_and_output() -> None:
    from infra.__main__ import OUTPUTS

    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- section:infra -->", 1)[1].split("<!-- /section:infra -->", 1)[0]
    for key in KEYS:
        assert f"| `mlship:{key.name}` | {key.type} |" in section, key.name
    for output in OUTPUTS:
        assert f"`{output}`" in section, output
