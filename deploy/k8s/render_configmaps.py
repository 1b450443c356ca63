"""Rewrite configmap.yaml and policies-configmap.yaml from deploy/gateway.toml and policies/."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HEADER = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: county-gateway
  labels:
    app.kubernetes.io/part-of: county-gateway
data:
"""


def literal_block(key: str, text: str) -> str:
    body = "\n".join(f"    {line}" if line else "" for line in text.rstrip("\n").split("\n"))
    return f"  {key}: |\n{body}\n"


def render_config() -> str:
    toml = (ROOT / "deploy" / "gateway.toml").read_text(encoding="utf-8")
    return ("# deploy/gateway.toml for the replicas, written by render_configmaps.py.\n"
            + HEADER.format(name="gateway-config") + literal_block("gateway.toml", toml))


def render_policies() -> str:
    files = sorted((ROOT / "policies").glob("*.yaml"))
    blocks = "".join(literal_block(p.name, p.read_text(encoding="utf-8")) for p in files)
    return ("# The county's dataset policies (policies/*.yaml), written by render_configmaps.py:\n"
            "#   python3 deploy/k8s/render_configmaps.py\n"
            + HEADER.format(name="gateway-policies") + blocks)


if __name__ == "__main__":
    (HERE / "configmap.yaml").write_text(render_config(), encoding="utf-8")
    (HERE / "policies-configmap.yaml").write_text(render_policies(), encoding="utf-8")
