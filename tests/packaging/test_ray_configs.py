"""The example Ray cluster config and KubeRay manifest in packaging/ray/ parse and are complete
(they are not run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

RAY_DIR = Path(__file__).resolve().parents[2] / "packaging" / "ray"


def test_cluster_launcher_config() -> None:
    cfg = yaml.safe_load((RAY_DIR / "cluster.yaml").read_text())
    for key in (
        "cluster_name",
        "provider",
        "auth",
        "setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        assert key in cfg, key
    assert cfg["provider"]["type"] == "local" and cfg["provider"]["worker_ips"]
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--head" in head and "--ray-client-server-port=10001" in head
    assert any("fathom-studio[cluster" in c for c in cfg["setup_commands"])
    try:  # Ray's own schema for cluster configs, where Ray is installed
        import jsonschema
        import ray
    except ImportError:
        return
    schema = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    if schema.exists():
        jsonschema.validate(cfg, json.loads(schema.read_text()))


def test_kuberay_manifest() -> None:
    docs = [d for d in yaml.safe_load_all((RAY_DIR / "kuberay-raycluster.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"PersistentVolumeClaim", "RayCluster"}
    rc = kinds["RayCluster"]
    assert rc["apiVersion"] == "ray.io/v1" and rc["metadata"]["name"]
    spec = rc["spec"]
    assert spec["rayVersion"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["ray-client-server-port"] == "10001"
    assert head["template"]["spec"]["containers"][0]["image"]
    (group,) = spec["workerGroupSpecs"]
    for key in (
        "groupName",
        "replicas",
        "minReplicas",
        "maxReplicas",
        "rayStartParams",
        "template",
    ):
        assert key in group, key
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    claim = kinds["PersistentVolumeClaim"]["metadata"]["name"]
    for pod in (head["template"]["spec"], group["template"]["spec"]):
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
