#!/usr/bin/env python3
"""Validates deploy/k8s without a cluster (CI runs it).

For the base, the production overlay, and the production overlay with the
HPA alternative in place of KEDA:

* `kubectl kustomize` builds it;
* every resource validates, strictly (unknown fields refused), against the
  Kubernetes schemas of a pinned version (kubernetes-validate), and every
  KEDA ScaledObject against deploy/k8s/schemas/keda-scaledobject-v1alpha1.json;
* the references hold within the build: scale targets, Service and
  PodDisruptionBudget selectors, envFrom ConfigMaps and Secrets, probe
  ports.

First it checks that the validators refuse what they must (a misspelt
field, a number where KEDA wants a string), so a pass means something.

Usage: scripts/k8s-validate.py   (needs kubectl and `pip install
kubernetes-validate`)
"""

import copy
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.32.0"
ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KEDA_SCHEMA = json.loads((K8S / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())
# Supplied from outside the repository in production (overlays/production).
EXTERNAL_SECRETS = {"datastream-secrets"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}


def build(directory):
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def validate(resource):
    """Raises when `resource` breaks its schema."""
    if resource["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(resource, KEDA_SCHEMA)
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def name_of(resource):
    return f'{resource["kind"]}/{resource["metadata"]["name"]}'


def pod_spec(resource):
    return resource["spec"]["template"]["spec"]


def pod_labels(resource):
    return resource["spec"]["template"]["metadata"].get("labels", {})


def check_references(resources):
    """Returns what does not hold between the resources of one build."""
    problems = []
    by_kind = {}
    for r in resources:
        by_kind.setdefault(r["kind"], {})[r["metadata"]["name"]] = r
    workloads = [r for r in resources if r["kind"] in WORKLOAD_KINDS]

    def selects_a_workload(selector):
        return any(
            all(pod_labels(w).get(k) == v for k, v in selector.items())
            for w in workloads
        )

    for r in resources:
        kind, spec = r["kind"], r.get("spec", {})
        if kind in ("ScaledObject", "HorizontalPodAutoscaler"):
            target = spec["scaleTargetRef"]
            if target["name"] not in by_kind.get(target.get("kind", "Deployment"), {}):
                problems.append(f"{name_of(r)} scales {target}, which is not in the build")
        if kind == "Service" and spec.get("type") != "ExternalName":
            if not selects_a_workload(spec.get("selector", {})):
                problems.append(f"{name_of(r)} selects no pods")
        if kind == "PodDisruptionBudget":
            if not selects_a_workload(spec["selector"]["matchLabels"]):
                problems.append(f"{name_of(r)} covers no pods")
        if kind in WORKLOAD_KINDS:
            for container in pod_spec(r)["containers"]:
                for source in container.get("envFrom", []):
                    if "configMapRef" in source:
                        ref = source["configMapRef"]["name"]
                        if ref not in by_kind.get("ConfigMap", {}):
                            problems.append(f"{name_of(r)} reads ConfigMap {ref}, not in the build")
                    if "secretRef" in source:
                        ref = source["secretRef"]["name"]
                        if ref not in by_kind.get("Secret", {}) and ref not in EXTERNAL_SECRETS:
                            problems.append(f"{name_of(r)} reads Secret {ref}, not in the build")
                ports = {p.get("name") for p in container.get("ports", [])} | {
                    p["containerPort"] for p in container.get("ports", [])
                }
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    port = container.get(probe, {}).get("httpGet", {}).get("port")
                    if port is not None and port not in ports:
                        problems.append(f"{name_of(r)} {probe} port {port} is no container port")
    return problems


def refuses(resource):
    try:
        validate(resource)
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError):
        return True
    return False


def check_the_validators(resources):
    """The validators refuse a misspelt field and a KEDA number."""
    deployment = copy.deepcopy(next(r for r in resources if r["kind"] == "Deployment"))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas", 1)
    scaled = copy.deepcopy(next(r for r in resources if r["kind"] == "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 5
    unknown = copy.deepcopy(next(r for r in resources if r["kind"] == "ScaledObject"))
    unknown["spec"]["minReplicas"] = 2
    for broken, what in [
        (deployment, "a Deployment with spec.replica"),
        (scaled, "a ScaledObject whose threshold is a number"),
        (unknown, "a ScaledObject with spec.minReplicas (HPA's name for it)"),
    ]:
        if not refuses(broken):
            sys.exit(f"the validators accepted {what}: they check nothing")


def with_hpa_instead_of_keda(workdir):
    """A copy of deploy/k8s whose production overlay uses the HPA component."""
    copy_root = pathlib.Path(workdir) / "k8s"
    shutil.copytree(K8S, copy_root)
    kustomization = copy_root / "overlays" / "production" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "../../components/keda" in text
    kustomization.write_text(
        text.replace("../../components/keda", "../../components/external-metrics-hpa")
    )
    return copy_root / "overlays" / "production"


def main():
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        builds = {
            "base": K8S / "base",
            "overlays/production": K8S / "overlays" / "production",
            "overlays/production with components/external-metrics-hpa": with_hpa_instead_of_keda(workdir),
        }
        built = {label: build(directory) for label, directory in builds.items()}
    check_the_validators(built["overlays/production"])
    for label, resources in built.items():
        kinds = sorted({r["kind"] for r in resources})
        for r in resources:
            try:
                validate(r)
            except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
                failures.append(f"{label}: {name_of(r)}: {e.message if hasattr(e, 'message') else e}")
        failures += [f"{label}: {p}" for p in check_references(resources)]
        print(f"{label}: {len(resources)} resources ({', '.join(kinds)})")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(f"k8s manifests: {len(failures)} problem(s)")
    print(f"k8s manifests valid against Kubernetes {KUBERNETES_VERSION} and KEDA's ScaledObject schema")


if __name__ == "__main__":
    main()
