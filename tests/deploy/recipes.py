"""Read the deployment recipes in deploy/ the way systemd, docker and compose read them.

The tests run the commands these files declare, so the parsing here is kept
to what those tools do with the files as written: no command is copied into
the tests.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# Where the recipes put things on a server, and where they are here.
UNIT_CODE_DIR = "/opt/dwvlist"
IMAGE_CODE_DIR = "/app"
IMAGE_VENV = "/opt/venv"


@dataclass
class Recipe:
    """One process as a recipe declares it: its command line, environment and working directory."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    settings: dict[str, list[str]] = field(default_factory=dict)


# --- systemd -----------------------------------------------------------------------------------


def unit_read(path: Path) -> dict[str, dict[str, list[str]]]:
    """Return {section: {key: [values in order]}} of a unit file (comments dropped, continuations joined)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path}: {line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _systemd_expand(argument: str, env: dict[str, str]) -> list[str]:
    """Expand one ExecStart word as systemd does: ${VAR} in place, a lone $VAR split on whitespace."""
    if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*", argument):
        return env.get(argument[1:], "").split()
    return [re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), argument)]


def _specifiers(value: str, unit_name: str) -> str:
    table = {"%%": "%", "%H": socket.gethostname(), "%n": unit_name, "%N": unit_name.rsplit(".", 1)[0]}
    return re.sub(r"%[%HnN]", lambda m: table[m.group(0)], value)


def unit_recipe(path: Path, *, env_file: Path, var_dir: Path, base_env: dict[str, str]) -> Recipe:
    """Return the process a [Service] unit starts, with /opt/dwvlist read as this tree and VAR_DIR as var_dir.

    Environment= is applied first and EnvironmentFile= over it, as systemd
    does; the unit's EnvironmentFile path is replaced by env_file.
    """
    service = unit_read(path)["Service"]

    def local(value: str) -> str:
        return value.replace(UNIT_CODE_DIR, str(ROOT)).replace("/var/lib/dwvlist", str(var_dir))

    env = dict(base_env)
    for assignment_line in service.get("Environment", []):
        for assignment in shlex.split(assignment_line):
            name, _, value = assignment.partition("=")
            env[name] = local(_specifiers(value, path.name))
    assert service.get("EnvironmentFile"), f"{path.name} names no EnvironmentFile="
    for _ in service["EnvironmentFile"]:
        env.update({k: v for k, v in dotenv_values(env_file, interpolate=False).items() if v is not None})
    (exec_start,) = service["ExecStart"]
    words = shlex.split(local(_specifiers(exec_start.lstrip("@-:+!"), path.name)))
    argv = [expanded for word in words for expanded in _systemd_expand(word, env)]
    return Recipe(name=path.stem, argv=argv, env=env, cwd=Path(local(service["WorkingDirectory"][0])), settings=service)


# --- Dockerfile and compose ----------------------------------------------------------------------


def dockerfile_read(path: Path) -> list[tuple[str, str]]:
    """Return the final stage's (INSTRUCTION, arguments) pairs, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        line = pending + stripped
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            instructions = []  # only the last stage is the image
        instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def image_config(path: Path) -> dict:
    """Return the image's ENV (expanded as docker does), WORKDIR, USER, ENTRYPOINT and CMD."""
    config: dict = {"env": {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}}
    for instruction, arguments in dockerfile_read(path):
        if instruction == "ENV":
            for assignment in shlex.split(arguments):
                name, _, value = assignment.partition("=")
                config["env"][name] = re.sub(
                    r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: config["env"].get(m.group(1), ""), value
                )
        elif instruction in ("WORKDIR", "USER"):
            config[instruction.lower()] = arguments
        elif instruction in ("CMD", "ENTRYPOINT"):
            assert arguments.startswith("["), f"{instruction} should be in exec form: {arguments}"
            config[instruction.lower()] = json.loads(arguments)
    return config


def compose_read(path: Path) -> dict:
    """Return the compose file with its YAML merge keys (<<: *app) applied."""
    return yaml.safe_load(path.read_text())


def compose_interpolate(value: str, variables: dict[str, str]) -> str:
    """Interpolate ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ as compose does."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        current = variables.get(name, "")
        if operator == ":?" and not current:
            raise ValueError(f"compose would stop: {argument}")
        if operator == ":-" and not current:
            return argument
        return current

    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-?])([^}]*))?\}", one, value)


def compose_recipe(
    compose: dict, service_name: str, *, image: dict, env_file: Path, variables: dict[str, str], base_env: dict
) -> Recipe:
    """Return the process compose starts for an app service: the image's ENTRYPOINT and CMD unless overridden."""
    service = compose["services"][service_name]
    entrypoint = service.get("entrypoint", image.get("entrypoint", []))
    command = service.get("command", image.get("cmd") if "entrypoint" not in service else [])
    assert isinstance(command, list), f"{service_name}: command should be a list (exec form)"
    argv = [compose_interpolate(word, variables) for word in [*entrypoint, *command]]

    def local(value: str) -> str:
        return value.replace(IMAGE_VENV, str(ROOT / ".venv")).replace(IMAGE_CODE_DIR, str(ROOT))

    env = {**base_env, **{k: local(v) for k, v in image["env"].items()}}
    assert service.get("env_file"), f"{service_name} reads no env_file"
    env.update({k: v for k, v in dotenv_values(env_file, interpolate=False).items() if v is not None})
    env.update({k: compose_interpolate(str(v), variables) for k, v in (service.get("environment") or {}).items()})
    return Recipe(name=service_name, argv=argv, env=env, cwd=Path(local(image["workdir"])), settings=service)
