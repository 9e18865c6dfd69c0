#!/usr/bin/env python3
"""Checks docker-compose.yml without a Docker engine: it parses, has the
topology the deployment guide describes, the files it mounts exist, and
every environment variable it gives a datastream service is one the binary
reads (src/settings.rs)."""

import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
settings = (root / "src" / "settings.rs").read_text()
known = set(re.findall(r'^\s*"([A-Z_]+)",$', settings, re.M)) | {"RUST_LOG"}
errors = []

services = compose.get("services", {})
for name in ["mysql", "mosquitto", "ingestor", "api", "nginx", "migrate"]:
    if name not in services:
        errors.append(f"service {name} is missing")

def replicas(name):
    return services.get(name, {}).get("deploy", {}).get("replicas", 1)

if replicas("ingestor") != 3:
    errors.append("ingestor should have 3 replicas")
if replicas("api") != 2:
    errors.append("api should have 2 replicas")
if "8080:80" not in services.get("nginx", {}).get("ports", []):
    errors.append("nginx should publish port 8080")

generator_types = set()
fleets = set()
for name, service in services.items():
    if service.get("image") != "datastream:latest":
        continue
    env = service.get("environment") or {}
    for var in env:
        if var not in known:
            errors.append(f"{name}: {var} is not a setting datastream reads")
    command = service.get("command") or []
    if command[:1] == ["generator"] and "--sensor-type" in command:
        generator_types.add(command[command.index("--sensor-type") + 1])
    if command[:1] == ["generator"] and "--fleet" in command:
        fleets.add(command[command.index("--fleet") + 1])
        if "JWT_SECRET" not in env:
            errors.append(f"{name}: a generator fleet serves REST and needs JWT_SECRET")
    if "depends_on" not in service and command[:1] != ["migrate"]:
        errors.append(f"{name}: no depends_on with health conditions")
if not generator_types:
    errors.append("a fixed generator (--sensor-type) expected")
if not fleets:
    errors.append("a generator fleet (--fleet) expected")

# Bind mounts name files in this repository; a typo would only show on a
# real `docker compose up`.
for name, service in services.items():
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("./") and not (root / source).exists():
            errors.append(f"{name}: mounts {source}, which does not exist")

example = (root / ".env.example").read_text()
for line in example.splitlines():
    if "=" in line and not line.startswith("#") and line.split("=", 1)[1].strip():
        errors.append(f".env.example must not hold a value: {line}")

if errors:
    print("docker-compose.yml check failed:", *errors, sep="\n  ")
    sys.exit(1)
print(f"docker-compose.yml ok: {len(services)} services, env names known to datastream")
