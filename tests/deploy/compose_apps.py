"""Prints, as JSON, what each service of a compose file that runs the go_example image gets:
{"<service>": {"command": [...], "environment": {...}, "healthcheck": [...], "read_only": ..,
"cap_drop": [..], "stop_grace_period": "..", "replicas": n, "depends_on": {..}}}, after
compose's own interpolation
(${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$) from an env file,
and with YAML merge keys applied. tests/api/deploy.rs loads each environment with the app's
configuration loader. Usage: compose_apps.py COMPOSE_FILE ENV_FILE
"""
import json
import re
import sys

import yaml

PATTERN = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def read_env(path):
    env = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def interpolate(text, env):
    def one(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        if op is None:
            return value or ""
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset_or_empty else value
        if unset_or_empty:
            raise SystemExit(f"required variable {name} is missing: {arg}")
        return value

    return PATTERN.sub(one, text)


def walk(node, env):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [walk(n, env) for n in node]
    if isinstance(node, dict):
        return {k: walk(v, env) for k, v in node.items()}
    return node


def main():
    compose_file, env_file = sys.argv[1], sys.argv[2]
    document = walk(yaml.safe_load(open(compose_file, encoding="utf-8")), read_env(env_file))
    apps = {}
    for name, service in document["services"].items():
        if not str(service.get("image", "")).startswith("go_example:"):
            continue
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        command = service.get("command") or ["http"]
        if isinstance(command, str):
            command = command.split()
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        apps[name] = {
            "command": command,
            "environment": {k: "" if v is None else str(v) for k, v in environment.items()},
            "healthcheck": (service.get("healthcheck") or {}).get("test"),
            "read_only": service.get("read_only", False),
            "cap_drop": service.get("cap_drop", []),
            "security_opt": service.get("security_opt", []),
            "stop_grace_period": service.get("stop_grace_period"),
            "replicas": (service.get("deploy") or {}).get("replicas", 1),
            "depends_on": {k: v.get("condition") for k, v in depends.items()},
        }
    json.dump(apps, sys.stdout, indent=1)


main()
