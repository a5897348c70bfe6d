"""The EKS stack runs the committed Prometheus rules in Amazon Managed Service for Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from infra import rules
from infra.components.prometheus import ALERTS_FILE, COLLECTOR_USER
from infra.config import StackConfig
from infra.plan import StackPlan

TOPIC = "arn:aws:sns:eu-west-1:123456789012:mlship-eks-alerts"


def one(plan: StackPlan, type_: str) -> dict[str, Any]:
    (found,) = plan.of_type(type_)
    return found.inputs


def test_the_rules_are_the_committed_promtool_tested_file(plans: dict[str, StackPlan]) -> None:
    namespace = one(plans["eks"], "aws:amp/ruleGroupNamespace:RuleGroupNamespace")
    assert namespace["data"] == ALERTS_FILE.read_text()
    assert namespace["name"] == "mlship-eks-alerts"
    assert yaml.safe_load(namespace["data"])["groups"]


def test_scrape_configuration_is_a_valid_prometheus_config_keeping_annotated_pods(
    plans: dict[str, StackPlan], tmp_path: Path
) -> None:
    scraper = one(plans["eks"], "aws:amp/scraper:Scraper")
    config = yaml.safe_load(scraper["scrapeConfiguration"])
    (job,) = config["scrape_configs"]
    relabel = {r.get("target_label") or r["action"]: r for r in job["relabel_configs"]}
    assert relabel["keep"]["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    ]
    # alerts.yml aggregates "by (namespace)": the scraped series carry it.
    assert relabel["namespace"]["source_labels"] == ["__meta_kubernetes_namespace"]
    assert "by (namespace" in ALERTS_FILE.read_text()
    assert scraper["source"]["eks"]["clusterArn"].endswith(":cluster/mlship-eks-cluster")
    assert len(scraper["source"]["eks"]["subnetIds"]) == 2
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian prometheus) is not installed")
    # Debian's promtool is built without Kubernetes service discovery: check everything else
    # (relabel actions, regexes, labels, globals) with the discovery swapped for a static one.
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_manager_sends_every_alert_to_the_stack_topic(plans: dict[str, StackPlan]) -> None:
    definition = one(plans["eks"], "aws:amp/alertManagerDefinition:AlertManagerDefinition")
    config = yaml.safe_load(yaml.safe_load(definition["definition"])["alertmanager_config"])
    assert config["route"]["receiver"] == "alert-topic"
    assert "routes" not in config["route"]  # nothing is routed elsewhere
    (receiver,) = config["receivers"]
    assert receiver["sns_configs"] == [
        {
            "topic_arn": TOPIC,
            "sigv4": {"region": "eu-west-1"},
            "subject": "mlship: {{ .CommonLabels.alertname }}",
        }
    ]


def test_topic_and_its_key_let_the_alert_manager_publish(plans: dict[str, StackPlan]) -> None:
    plan = plans["eks"]
    (topic_policy,) = plan.of_type(rules.TOPIC_POLICY)
    statements = json.loads(topic_policy.inputs["policy"])["Statement"]
    aps = [s for s in statements if s["Principal"] == {"Service": "aps.amazonaws.com"}]
    assert aps and aps[0]["Action"] == "sns:Publish" and aps[0]["Resource"] == TOPIC
    assert aps[0]["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    key = next(k for k in plan.of_type(rules.KMS_KEY) if "monitoring" in k.name)
    services = [
        s["Principal"]["Service"]
        for s in json.loads(key.inputs["policy"])["Statement"]
        if "Service" in s["Principal"]
    ]
    assert services == [["aps.amazonaws.com", "cloudwatch.amazonaws.com"]]


def test_scraper_reads_the_cluster_read_only_as_the_collector_user(
    plans: dict[str, StackPlan],
) -> None:
    plan = plans["eks"]
    entries = [
        r.inputs
        for r in plan.of_type("aws:eks/accessEntry:AccessEntry")
        if r.inputs.get("userName") == COLLECTOR_USER
    ]
    assert len(entries) == 1
    assert "AWSServiceRoleForAmazonPrometheusScraper" in entries[0]["principalArn"]
    role = one(plan, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    assert not any("secrets" in rule.get("resources", []) for rule in role["rules"])
    binding = one(plan, "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "User", "name": COLLECTOR_USER, "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_prometheus_workspace_is_for_eks_stacks_only(plans: dict[str, StackPlan]) -> None:
    for stack in ("dev", "prod"):
        assert plans[stack].of_type("aws:amp/workspace:Workspace") == []
    with pytest.raises(ConfigError, match=r"^mlship:prometheusWorkspace is true on a SageMaker"):
        StackConfig.parse(
            {
                "environment": "dev",
                "imageTag": "abc",
                "githubRepository": "o/r",
                "prometheusWorkspace": "true",
            },
            project="mlship",
            stack="dev",
            region="eu-west-1",
        )
