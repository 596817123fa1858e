"""The image and the packages: what runs in the pod is the command the e2e tests run.

- The Dockerfile's ENTRYPOINT is the ``druid-access`` console script of pyproject.toml, and
  the Deployment's args (deploy/, rendered from the chart) and the image's CMD are accepted by
  the ``run`` sub-command's parser.
- The image is pinned (base image tag with an exact version) and runs as a non-root numeric user.
- A wheel builds from the sources the Dockerfile copies, carries the CLI and ``py.typed``,
  and its console script works from a fresh virtualenv.
- The test servers are their own distribution (``druid-access-testing``, testing/): not in the
  operator's wheel nor its image, with their own console script, and importable as
  ``druid_access.testing.*`` however the two are installed (wheels, editable, or one of each).
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
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
from druid_access.testing import cli as testing_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
TESTING = ROOT / "testing"  # the druid-access-testing distribution
OPERATOR_COMMANDS = {"run", "export", "diff", "crds"}
TESTING_COMMANDS = {"controlplane", "druid", "fake-coordinator", "fake-pivot"}


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


def _stages() -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(name given by ``FROM ... AS name`` or None, its instructions), in order."""
    stages: list[tuple[str | None, list[tuple[str, str]]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            words = rest.split()
            named = len(words) == 3 and words[1].upper() == "AS"
            stages.append((words[2] if named else None, []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    assert stages, "the Dockerfile has no FROM"
    return stages


def _final_stage() -> list[tuple[str, str]]:
    return _stages()[-1][1]


def _stage(name: str) -> list[tuple[str, str]]:
    (stage,) = (instructions for stage_name, instructions in _stages() if stage_name == name)
    return stage


def _deployment_args() -> list[str]:
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "druid-access-operator.yaml").read_text()) if d]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert len(deployments) == 1
    containers = deployments[0]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    assert "command" not in containers[0], "the Deployment must not override the image's ENTRYPOINT"
    args: list[str] = containers[0]["args"]
    return args


def _pyproject(root: Path = ROOT) -> dict[str, Any]:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    (action,) = (a for a in parser._actions if a.dest == "command")
    assert action.choices is not None
    return set(action.choices)


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


def test_the_operator_command_has_only_operator_commands() -> None:
    assert _subcommands(build_parser()) == OPERATOR_COMMANDS
    assert _subcommands(testing_cli.build_parser()) == TESTING_COMMANDS


def test_the_testing_distribution_has_its_own_console_script() -> None:
    project = _pyproject(TESTING)["project"]
    assert project["name"] == "druid-access-testing"
    assert project["scripts"] == {"druid-access-testing": "druid_access.testing.cli:main"}
    operator = _pyproject()["project"]
    assert f"{operator['name']}=={operator['version']}" in project["dependencies"]
    extras = [req for reqs in project["optional-dependencies"].values() for req in reqs]
    for requirement in [*project["dependencies"], *extras]:
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^,; ]*", requirement), f"unpinned: {requirement}"
    (script,) = entry_points(group="console_scripts", name="druid-access-testing")
    assert script.value == "druid_access.testing.cli:main"
    assert script.load() is testing_cli.main


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
    copied = " ".join(rest for keyword, rest in _stage("build") if keyword == "COPY")
    for needed in ("pyproject.toml", "README.md", "operator"):
        assert needed in copied
    readme = _pyproject()["project"]["readme"]
    assert readme in copied


def test_the_operator_image_has_no_test_servers() -> None:
    """The operator's stages build and install its wheel alone; the test servers are the
    ``testing`` target (``make testing-image``, which ``make kind-e2e`` runs in the cluster)."""
    for name, stage in (("build", _stage("build")), ("final", _final_stage())):
        for keyword, rest in stage:
            assert not (keyword == "COPY" and "testing" in rest), f"{name} stage: COPY {rest}"
            assert not (keyword == "RUN" and "testing" in rest), f"{name} stage: RUN {rest}"
    assert [rest for keyword, rest in _final_stage() if keyword == "COPY"] == [
        "--from=build /opt/druid-access /opt/druid-access"
    ]
    testing = _stage("testing")
    assert [json.loads(rest) for keyword, rest in testing if keyword == "ENTRYPOINT"] == [
        ["druid-access-testing"]
    ]
    assert [rest for keyword, rest in testing if keyword == "USER"] == ["65532:65532"]
    assert "--target testing" in (ROOT / "hack" / "kind-e2e.sh").read_text(encoding="utf-8")


# --- the wheel ----------------------------------------------------------------------------------------


def _build_wheel(tmp_path_factory: pytest.TempPathFactory, project: Path, tree: str) -> Path:
    """A wheel of ``project`` built from a copy of its pyproject.toml, README.md and ``tree``
    (exactly what the Dockerfile copies, and the shared tree gets no build/)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy2(project / "pyproject.toml", src)
    shutil.copy2(project / "README.md", src)
    shutil.copytree(
        project / tree,
        src / tree,
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
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's wheel."""
    built = _build_wheel(tmp_path_factory, ROOT, "operator")
    assert built.name.startswith("druid_access_operator-")
    return built


@pytest.fixture(scope="module")
def testing_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test servers' wheel (druid-access-testing)."""
    built = _build_wheel(tmp_path_factory, TESTING, "src")
    assert built.name.startswith("druid_access_testing-")
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
    # The test servers are the druid-access-testing distribution, not the operator's.
    assert not [name for name in names if name.startswith("druid_access/testing")]
    assert not re.search(r"^druid-access-testing", entry, re.M)
    assert "druid_access/__init__.py" in names  # the package (and its extend_path) is the operator's


def test_testing_wheel_contents(testing_wheel: Path) -> None:
    project = _pyproject(TESTING)["project"]
    with zipfile.ZipFile(testing_wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    # Only druid_access/testing/**: druid_access/__init__.py is the operator's (two wheels owning
    # one file would overwrite each other, and uninstalling either would break the other).
    package = {name for name in names if not name.startswith(f"{dist_info}/")}
    assert package and all(name.startswith("druid_access/testing/") for name in package), package
    for module in (
        "__init__",
        "cli",
        "controlplane",
        "demo",
        "druid",
        "fake_coordinator",
        "fake_pivot",
        "faults",
    ):
        assert f"druid_access/testing/{module}.py" in package
    assert "druid_access/testing/druidwire/smile.py" in package
    assert re.search(r"^druid-access-testing = druid_access\.testing\.cli:main$", entry, re.M)
    requires = set(re.findall(r"^Requires-Dist: (\S+?)(?: ;.*)?$", metadata, re.M))
    assert set(project["dependencies"]) <= requires
    assert "druid-access-operator==0.1.0" in requires


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
    refused = subprocess.run(
        [str(bin_dir / "druid-access"), "fake-coordinator", "--admin-password", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "invalid choice: 'fake-coordinator'" in refused.stderr
    # The installed package is the wheel's, not the checkout's.
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import druid_access, sys; sys.stdout.write(druid_access.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(env_dir)


# --- the two distributions together -------------------------------------------------------------------

# How each of the two can be installed: from its wheel, or editable (what `pip install -e` of
# either writes here, and `make venv` does: a .pth path entry to its source root).
INSTALLS = {
    "both-wheels": ("wheel", "wheel"),
    "both-editable": ("editable", "editable"),
    "operator-wheel-testing-editable": ("wheel", "editable"),
    "operator-editable-testing-wheel": ("editable", "wheel"),
}

PROBE = """
import json, sys
import druid_access
from druid_access.testing import FakeCoordinator, FakePivot
from druid_access.testing.controlplane import ControlPlane
import druid_access.testing.demo
json.dump({"operator": druid_access.__file__, "testing": druid_access.testing.__file__}, sys.stdout)
"""


def _ready_line(process: subprocess.Popen[str], timeout: float = 30) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout), f"no output within {timeout} s"
    return process.stdout.readline().strip()


@pytest.mark.parametrize("install", sorted(INSTALLS))
def test_druid_access_testing_imports_however_the_two_are_installed(
    install: str, wheel: Path, testing_wheel: Path, tmp_path: Path
) -> None:
    """``druid_access.testing.*`` keeps its import paths whether the two distributions share one
    ``site-packages/druid_access/`` (wheels) or live in two directories (editable, or mixed): the
    operator's ``druid_access/__init__.py`` extends its ``__path__`` to every ``druid_access/``
    directory on ``sys.path``."""
    operator_how, testing_how = INSTALLS[install]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    )
    wheels = [str(w) for w, how in ((wheel, operator_how), (testing_wheel, testing_how)) if how == "wheel"]
    if wheels:
        pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
        installed = subprocess.run(
            [*pip, "install", "--no-deps", "--no-index", "-q", *wheels],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    sources = {"operator": ROOT / "operator", "testing": TESTING / "src"}
    for (name, source), how in zip(sources.items(), (operator_how, testing_how), strict=True):
        if how == "editable":
            (site / f"__editable__.druid_access_{name}-0.1.0.pth").write_text(f"{source}\n", encoding="utf-8")
    # The dependencies (aiohttp, httpx, PyYAML, ...) without the network: this virtualenv's
    # site-packages as a plain path entry, last (its own .pth files, its editable installs of the
    # two, are not read from there).
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        # -I: no PYTHONPATH, no current directory on sys.path; only what is installed.
        return subprocess.run(
            [str(python), "-I", *argv], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
        )

    probe = run("-c", PROBE)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    for name, how in (("operator", operator_how), ("testing", testing_how)):
        where = Path(found[name])
        assert where.is_relative_to(site if how == "wheel" else sources[name]), (name, where)
    demo = run("-m", "druid_access.testing.demo", "--help")
    assert demo.returncode == 0, demo.stderr
    assert "usage: druid-access-demo" in demo.stdout
    command = (
        [str(env_dir / "bin" / "druid-access-testing")]
        if testing_how == "wheel"
        else [str(python), "-I", "-m", "druid_access.testing.cli"]
    )
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "usage: druid-access-testing" in helped.stdout
    for sub in TESTING_COMMANDS:
        assert sub in helped.stdout
    # A test server, started from this installation, serves until SIGTERM.
    with subprocess.Popen(
        [*command, "fake-pivot", "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as process:
        try:
            line = _ready_line(process)
            assert line.startswith("fake-pivot ready on http://127.0.0.1:"), (line, process.stderr)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
