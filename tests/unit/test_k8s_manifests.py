"""`deploy/k8s` (kustomize base + production overlay) and `deploy/docker-compose.yml`:
every manifest validates against the Kubernetes schema offline (`kubernetes-validate`), the
Deployments are complete (probes, resources, settings from the ConfigMap and Secret, a
PodDisruptionBudget, a Service), and the routing is the API's: the Ingress sends every
path of the OpenAPI document to the front door, which reaches both services."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dealreg.gateway import whole_document

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.30.0"  # the oldest version we claim to support
SERVICES = ("registration", "projections", "adjudication", "gateway")


# --- a small kustomize: the features our kustomizations use ------------------------------

def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for what we patch: maps merge, lists of named
    maps merge by name, other lists and scalars are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        merged = {i["name"]: i for i in base}
        for item in patch:
            merged[item["name"]] = _merge(merged.get(item["name"], {}), item)
        return list(merged.values())
    return copy.deepcopy(patch)


def build(directory: Path) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(spec) <= {"apiVersion", "kind", "namespace", "resources", "images",
                         "replicas", "patches"}, "a kustomize feature this test cannot build"
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            docs += build(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch_entry in spec.get("patches", []):
        patch = yaml.safe_load((directory / patch_entry["path"]).read_text())
        targets = [i for i, d in enumerate(docs) if d["kind"] == patch["kind"]
                   and d["metadata"]["name"] == patch["metadata"]["name"]]
        assert len(targets) == 1, f"patch {patch_entry['path']} matches {len(targets)}"
        docs[targets[0]] = _merge(docs[targets[0]], patch)
    for doc in docs:
        if spec.get("namespace") and doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = spec["namespace"]
        for count in spec.get("replicas", []):
            if doc["kind"] == "Deployment" and doc["metadata"]["name"] == count["name"]:
                doc["spec"]["replicas"] = count["count"]
        for container in _containers(doc):
            for image in spec.get("images", []):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:" \
                                         f"{image.get('newTag', tag)}"
    return docs


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    template = doc.get("spec", {}).get("template", {})
    containers: list[dict[str, Any]] = template.get("spec", {}).get("containers", [])
    return containers


def _normal(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"]))


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(K8S / request.param)


def test_every_kustomization_builds_as_kubectl_builds_it() -> None:
    """Our reading of the kustomizations is kubectl's (where kubectl is installed)."""
    kubectl = shutil.which("kubectl")
    for directory in (K8S / "base", K8S / "overlays" / "production"):
        ours = build(directory)
        assert len(ours) >= 15
        if kubectl:
            out = subprocess.run([kubectl, "kustomize", str(directory)], check=True,
                                 capture_output=True, text=True, timeout=120).stdout
            theirs = [d for d in yaml.safe_load_all(out) if d]
            assert _normal(theirs) == _normal(ours), directory


# --- the schema ------------------------------------------------------------------------


def test_every_manifest_validates_against_the_kubernetes_schema(
        rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    # The raw files too (each is a resource the base lists).
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text()):
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The validator is not a no-op: a misspelt field and a wrong type fail."""
    deployment = next(d for d in build(K8S / "base") if d["kind"] == "Deployment")
    for broken in ({"spec": {"replica": 2}}, {"spec": {"replicas": "two"}}):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(_merge(deployment, broken), KUBERNETES, strict=True)


# --- the deployment ----------------------------------------------------------------------


def _by(rendered: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered if d["kind"] == kind}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_each_service_has_a_complete_deployment(rendered: list[dict[str, Any]]) -> None:
    deployments = _by(rendered, "Deployment")
    services = _by(rendered, "Service")
    budgets = _by(rendered, "PodDisruptionBudget")
    config = _by(rendered, "ConfigMap")["dealreg-config"]["data"]
    secret = _by(rendered, "Secret")["dealreg-secrets"]["stringData"]
    assert set(deployments) == {f"dealreg-{s}" for s in SERVICES}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        [container] = _containers(deployment)
        component = name.removeprefix("dealreg-")
        assert container["args"] == (["gateway"] if component == "gateway"
                                     else ["serve", component])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        refs = container["envFrom"]
        assert {"configMapRef": {"name": "dealreg-config"}} in refs
        # The gateway authenticates nothing itself: it gets no secret.
        assert ({"secretRef": {"name": "dealreg-secrets"}} in refs) == (component != "gateway")
        port = container["ports"][0]
        assert port["containerPort"] == int(config["DEALREG_PORT"])
        assert [b for b in budgets.values()
                if _selects(b["spec"]["selector"]["matchLabels"], labels)], name
        assert [s for s in services.values()
                if _selects(s["spec"]["selector"], labels)
                and s["spec"]["ports"][0]["targetPort"] == port["name"]], name
    assert config["DEALREG_HOST"] == "0.0.0.0"
    assert {"DEALREG_DATABASE_URL", "DEALREG_ADMIN_TOKEN"} <= set(secret)
    assert not any(k in config for k in secret), "a secret in the ConfigMap"


def test_adjudicators_never_outnumber_partitions(rendered: list[dict[str, Any]]) -> None:
    config = _by(rendered, "ConfigMap")["dealreg-config"]["data"]
    adjudicators = _by(rendered, "Deployment")["dealreg-adjudication"]["spec"]["replicas"]
    assert 1 <= adjudicators <= int(config["DEALREG_TOPIC_PARTITIONS"])
    strategy = _by(rendered, "Deployment")["dealreg-adjudication"]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxSurge"] == 0  # not even during a rollout


def test_the_jobs_migrate_and_create_topics_with_real_commands(
        rendered: list[dict[str, Any]]) -> None:
    from typer.main import get_command

    from dealreg.cli import app

    cli = get_command(app)
    jobs = _by(rendered, "Job")
    commands = {tuple(_containers(job)[0]["args"]) for job in jobs.values()}
    assert commands == {("db", "upgrade"), ("topics", "create")}
    for group, verb in commands:
        assert verb in cli.commands[group].commands, (group, verb)  # type: ignore[attr-defined]
    for job in jobs.values():
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def _service_of(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
    assert match, url
    return match.group(1), int(match.group(2))


def test_the_ingress_sends_every_api_path_to_the_front_door(
        rendered: list[dict[str, Any]]) -> None:
    [ingress] = _by(rendered, "Ingress").values()
    services = _by(rendered, "Service")
    config = _by(rendered, "ConfigMap")["dealreg-config"]["data"]
    [rule] = ingress["spec"]["rules"]  # one host
    paths = rule["http"]["paths"]

    def backend(path: str) -> str:
        matching = [p for p in paths
                    if (p["pathType"] == "Prefix" and (path == p["path"] or path.startswith(
                        p["path"].rstrip("/") + "/")))
                    or (p["pathType"] == "Exact" and path == p["path"])]
        assert matching, f"the Ingress does not route {path}"
        longest = max(matching, key=lambda p: len(p["path"]))
        return str(longest["backend"]["service"]["name"])

    api = [re.sub(r"\{[^}]+\}", "x-1", p) for p in whole_document()["paths"]]
    for path in [*api, "/openapi.json", "/docs", "/docs/assets/swagger-ui.css",
                 "/console", "/"]:
        assert backend(path) == "dealreg-gateway", path
    assert len(api) >= 25
    # The front door reaches the two services by their Service names and ports.
    for setting, component in (("DEALREG_GATEWAY_COMMANDS_URL", "registration"),
                               ("DEALREG_GATEWAY_QUERIES_URL", "projections")):
        name, port = _service_of(config[setting])
        assert name == f"dealreg-{component}"
        assert services[name]["spec"]["ports"][0]["port"] == port
    name, port = _service_of(config["DEALREG_CONSOLE_API_URL"])
    assert name == "dealreg-gateway" and services[name]["spec"]["ports"][0]["port"] == port


# --- docker-compose ------------------------------------------------------------------------


def test_compose_keeps_data_in_volumes_and_serves_the_api_on_one_port() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    volumes = set(compose["volumes"])
    assert {"kafka-data", "postgres-data"} <= volumes
    mounts = {name: [v.split(":")[0] for v in s.get("volumes", [])]
              for name, s in services.items()}
    assert "kafka-data" in mounts["kafka"] and "postgres-data" in mounts["postgres"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")
                 and name not in ("kafka", "postgres")}
    assert list(published) == ["gateway"] and len(published["gateway"]) == 1
    gateway = services["gateway"]
    assert gateway["command"] == ["gateway"]
    env = gateway["environment"]
    for setting, component in (("DEALREG_GATEWAY_COMMANDS_URL", "registration"),
                               ("DEALREG_GATEWAY_QUERIES_URL", "projections")):
        name, port = _service_of(env[setting])
        assert name == component
        assert services[name]["command"] == ["serve", component]
        assert int(services[name]["environment"]["DEALREG_PORT"]) == port
        assert services[name]["environment"]["DEALREG_HOST"] == "0.0.0.0"
    # Migrations and topics run once, before the services.
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["topics"]["command"] == ["topics", "create"]
    for name in ("registration", "projections", "adjudication"):
        after = services[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully"
        assert after["topics"]["condition"] == "service_completed_successfully"


def test_the_pods_believe_forwarded_addresses_from_cluster_proxies_only(
        rendered: list[dict[str, Any]]) -> None:
    """The ingress reaches the gateway, the gateway the services, each from a pod address:
    unless they believe those proxies' `X-Forwarded-For`, every client shares a proxy's
    address in the auth-failure limit and one key-guesser locks all of them out. Never
    `*`: a client would choose its own address."""
    import ipaddress

    config = _by(rendered, "ConfigMap")["dealreg-config"]["data"]
    trusted = config["DEALREG_FORWARDED_ALLOW_IPS"].split(",")
    assert "*" not in trusted
    networks = [ipaddress.ip_network(t.strip()) for t in trusted]
    assert all(n.is_private for n in networks), networks
