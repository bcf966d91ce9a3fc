"""docker/kubernetes/: valid against Kubernetes' schemas, and consistent with the image.

``kubernetes-validate`` ships the API schemas of each Kubernetes release, so
this runs offline, next to the image and compose checks of test_image.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dataserve.cli import _parser
from dataserve.core.limits import DEFAULT_LIMITS
from dataserve.ops.config import DEFAULT_OPS
from tests.conftest import ROOT

from .test_image import entrypoint, instruction

MANIFESTS = ROOT / "docker" / "kubernetes"
#: Releases the manifests must be valid for: the oldest still common, the newest.
VERSIONS = ["1.27", "1.33"]


def documents() -> dict[str, dict[str, Any]]:
    """``{kind: document}`` of every manifest."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(version: str) -> None:
    import kubernetes_validate

    docs = documents()
    assert set(docs) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in docs.values():
        # strict: a misspelt field is an error, not silently ignored
        kubernetes_validate.validate(doc, version, strict=True)


def container() -> dict[str, Any]:
    (only,) = documents()["Deployment"]["spec"]["template"]["spec"]["containers"]
    value: dict[str, Any] = only
    return value


def test_the_deployment_runs_the_image_the_way_the_tests_do() -> None:
    pod = documents()["Deployment"]["spec"]["template"]["spec"]
    c = container()
    args = _parser().parse_args([*entrypoint()[1:], *c["args"]])
    assert (args.host, args.port, args.tcp_port) == ("0.0.0.0", 8000, 9000)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "native": 9000}
    assert instruction("EXPOSE") == ["8000 9000"]
    assert pod["securityContext"]["runAsUser"] == int(instruction("USER")[0])
    # probes on the operations routes
    prefix = DEFAULT_OPS.prefix
    assert c["livenessProbe"]["httpGet"]["path"] == f"{prefix}/health"
    assert c["readinessProbe"]["httpGet"]["path"] == f"{prefix}/ready"
    assert {c[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe")} == {"http"}
    # the grace period covers the preStop pause, the drain delay and the
    # shutdown timeout given to requests in flight
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    shutdown = args.shutdown_timeout or DEFAULT_LIMITS.shutdown_timeout
    assert pod["terminationGracePeriodSeconds"] > pause + args.drain_delay + shutdown
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in c["env"]}
    assert ":" in env["DATASERVE_HANDLER"]["value"]
    assert env["DATASERVE_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_service_autoscaler_and_budget_point_at_the_deployment() -> None:
    docs = documents()
    deployment = docs["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = docs["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["name"]: p["targetPort"] for p in service["ports"]} == {
        "http": "http",
        "native": "native",
    }
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_deploy_docs_explain_running_them() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert "kubectl apply -f docker/kubernetes/" in doc
    for name in sorted(p.name for p in MANIFESTS.glob("*.yaml")):
        assert name in doc, name
    assert Path("docker/kubernetes").as_posix() in doc
