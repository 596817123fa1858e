"""The image and the package: what runs in the pod is the command the e2e tests run.

- The Dockerfile's ENTRYPOINT is the ``druid-access`` console script of pyproject.toml, and
  the Deployment's args (deploy/, rendered from the chart) and the image's CMD are accepted by
  the ``run`` sub-command's parser.
- The image is pinned (base image tag with an exact version) and runs as a non-root numeric user.
- A wheel builds from the sources the Dockerfile copies, carries the CLI and ``py.typed``,
  and its console script works from a fresh virtualenv.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from druid_access.cli import build_parser, main
from druid_access.config import parse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


# --- Dockerfile parsing --------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    out = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _exec_form(instruction: str) -> list[str]:
    values = [rest for keyword, rest in _instructions() if keyword == instruction]
    assert values, f"the Dockerfile has no {instruction}"
    parsed = json.loads(values[-1])  # the last one wins, as in Docker
    assert isinstance(parsed, list), f"{instruction} must use the exec (JSON array) form"
    assert all(isinstance(item, str) for item in parsed)
    return parsed


def _build_args() -> dict[str, str]:
    args = {}
    for keyword, rest in _instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1] :]


def _deployment_args() -> list[str]:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "druid-access-operator.yaml").read_text()) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1
    containers = deployments[0]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert "command" not in containers[0], "the Deployment must not override the image's ENTRYPOINT"
    args: list[str] = containers[0]["args"]
    return args


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# --- the command --------------------------------------------------------------------------------------


def test_entrypoint_is_the_console_script() -> None:
    entrypoint = _exec_form("ENTRYPOINT")
    scripts = _pyproject()["project"]["scripts"]
    assert entrypoint == ["druid-access"]
    assert scripts == {"druid-access": "druid_access.cli:main"}
    # The installed console script (what the e2e tests' OperatorProcess runs as
    # `python -m druid_access.cli`) resolves to the same function.
    (script,) = entry_points(group="console_scripts", name="druid-access")
    assert script.value == "druid_access.cli:main"
    assert script.load() is main


def test_cmd_and_deployment_args_are_accepted_by_run() -> None:
    parser = build_parser()
    cmd = _exec_form("CMD")
    args = _deployment_args()
    for argv in (cmd, args):
        assert argv[0] == "run"
        parsed = parser.parse_args(argv)  # SystemExit (a test error) if the parser refuses them
        assert parsed.command == "run"
        assert parsed.config == "/etc/druid-access/config.yaml"
        assert parsed.all_namespaces or parsed.namespace
    parsed = parser.parse_args(args)
    # The chart's default values: cluster-wide, the probe port and the metrics port of the Deployment.
    assert parsed.all_namespaces is True
    assert parsed.health == "http://0.0.0.0:8080/healthz"
    assert parsed.metrics_port == 9090
    assert parsed.peering is None  # one replica by default: standalone


def test_config_path_is_where_the_chart_mounts_the_configmap() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "druid-access-operator.yaml").read_text()) if d]
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = build_parser().parse_args(container["args"]).config
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert str(Path(config).parent) in mounts
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    configmap = volumes[mounts[str(Path(config).parent)]]["configMap"]["name"]
    (cm,) = (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == configmap)
    assert Path(config).name in cm["data"]


def test_plain_manifests_config_parses_and_ship_the_user_roles() -> None:
    """deploy/druid-access-operator.yaml: the operator accepts its config, and the user-facing
    roles never write a status (the operator's record of ownership) nor touch Secrets."""
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "druid-access-operator.yaml").read_text()) if d]
    (cm,) = (d for d in docs if d["kind"] == "ConfigMap")
    config = parse(yaml.safe_load(cm["data"]["config.yaml"]))
    assert config.namespace == "druid-access"
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for suffix, aggregate_to in (("view", {"view"}), ("edit", {"edit", "admin"})):
        role = roles[f"druid-access-operator-{suffix}"]
        labels = role["metadata"]["labels"]
        prefix = "rbac.authorization.k8s.io/aggregate-to-"
        assert {
            k.removeprefix(prefix) for k, v in labels.items() if k.startswith(prefix) and v == "true"
        } == (aggregate_to)
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["druidaccess.io"], rule
            if not set(rule["verbs"]) <= {"get", "list", "watch"}:
                assert not [r for r in rule["resources"] if r.endswith("/status")], rule


def test_run_help_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "druid_access.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--namespace", "--all-namespaces", "--health", "--metrics-port", "--peering"):
        assert option in result.stdout


# --- the image ----------------------------------------------------------------------------------------


def test_base_images_are_pinned_to_an_exact_version() -> None:
    args = _build_args()
    froms = [rest for keyword, rest in _instructions() if keyword == "FROM"]
    assert froms
    for line in froms:
        image = line.split()[0]
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], image)
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        # An exact release (3.11.14, optionally -slim-bookworm), not a moving tag (3.11, latest, slim).
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[a-z0-9.]+)*", tag), f"{image}: tag {tag!r} is not pinned"
    # The build tool installed inside the image is pinned too.
    for keyword, rest in _instructions():
        if keyword == "RUN" and "pip install" in rest:
            for command in re.findall(r"pip install ([^&;|]+)", rest):
                for requirement in command.split():
                    if not requirement.startswith(("-", "/", ".")):
                        assert "==" in requirement, f"unpinned: {requirement}"


def test_image_runs_as_a_non_root_numeric_user() -> None:
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1]
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user!r} must be numeric (runAsNonRoot cannot verify a name)"
    assert int(match.group(1)) != 0
    assert match.group(2) is None or int(match.group(2)) != 0
    # The chart's pod security context agrees with the image.
    values = yaml.safe_load((ROOT / "helm" / "druid-access-operator" / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["runAsUser"] == int(match.group(1))


def test_image_copies_what_the_wheel_needs() -> None:
    copied = " ".join(rest for keyword, rest in _instructions() if keyword == "COPY")
    for needed in ("pyproject.toml", "README.md", "operator"):
        assert needed in copied
    readme = _pyproject()["project"]["readme"]
    assert readme in copied


# --- the wheel ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from exactly what the Dockerfile copies (so the shared tree gets no build/)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(
        ROOT / "operator",
        src / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            ".",
            "-w",
            str(out),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("druid_access_operator-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    project = _pyproject()["project"]
    assert wheel.name.startswith(f"druid_access_operator-{project['version']}-py3-none-any")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "druid_access/cli.py" in names
        assert "druid_access/py.typed" in names
        assert "druid_access/runner.py" in names
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    assert re.search(r"^druid-access = druid_access\.cli:main$", entry, re.M)
    requires = set(re.findall(r"^Requires-Dist: (\S+?)(?: ;.*)?$", metadata, re.M))
    assert set(project["dependencies"]) <= requires
    assert "Requires-Python: >=3.11" in metadata
    assert not any(name.startswith(("tests/", "operator/")) for name in names)


def test_wheel_console_script_works_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    # --no-deps: `druid-access --help` imports no dependency (sub-commands import lazily), so the
    # check needs neither the network nor minutes of installing kopf and friends.
    install = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    for argv in (["--help"], ["run", "--help"]):
        result = subprocess.run(
            [str(bin_dir / "druid-access"), *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert "usage: druid-access" in result.stdout
    # The installed package is the wheel's, not the checkout's.
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import druid_access, sys; sys.stdout.write(druid_access.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(env_dir)
