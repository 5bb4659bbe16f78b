"""What `make run` and `make test` install on a fresh machine: the locks in locks/ against
pyproject.toml's ranges and against the environment the tests run in, the Makefile's choice of
Python (scripts/pick_python.sh, on a PATH of stand-in interpreters) and its refusal of platforms
without a lock."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Each lock and the marker environment it was resolved for (`make lock`: Python 3.11's markers).
LOCKS = {
    "linux-x86_64.txt": {"sys_platform": "linux", "platform_machine": "x86_64"},
    "macos-arm64.txt": {"sys_platform": "darwin", "platform_machine": "arm64"},
}
LOCK_OF_THIS_MACHINE = {
    ("Linux", "x86_64"): "linux-x86_64.txt",
    ("Darwin", "arm64"): "macos-arm64.txt",
}
PICK_PYTHON = ROOT / "scripts" / "pick_python.sh"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate((ROOT / "locks" / lock).read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator and re.fullmatch(r"[A-Za-z0-9._-]+", name) and " " not in version, (
            f"locks/{lock}:{number}: expected NAME==VERSION, found {line!r}"
        )
        assert _canonical(name) not in pins, f"locks/{lock}:{number}: {name} pinned twice"
        pins[_canonical(name)] = Version(version)
    return pins


def _project_requirements() -> list[Requirement]:
    texts = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        texts += extra
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_dependency_in_pyproject_is_pinned_within_its_range(lock):
    """A dependency added to pyproject.toml without `make lock` would not be installed by make."""
    pins = _pins(lock)
    environment = {**LOCKS[lock], "python_version": "3.11", "python_full_version": "3.11.0"}
    for requirement in _project_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        pinned = pins.get(_canonical(requirement.name))
        assert pinned is not None, (
            f"expected {requirement} pinned in locks/{lock}, found no pin: run `make lock`"
        )
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"expected locks/{lock} to pin {requirement}, found {requirement.name}=={pinned}"
        )


def test_linux_gets_torchs_cpu_build_and_macos_the_same_version():
    linux, macos = _pins("linux-x86_64.txt")["torch"], _pins("macos-arm64.txt")["torch"]
    assert linux.local == "cpu", f"expected torch's CPU build (+cpu) on Linux, found {linux}"
    assert macos.local is None and macos.public == linux.public, (
        f"expected macOS to convert with the torch the tests run ({linux.public}), found {macos}"
    )


@pytest.mark.skipif(
    (platform.system(), platform.machine()) not in LOCK_OF_THIS_MACHINE, reason="no lock here"
)
def test_the_tests_run_on_exactly_what_this_platforms_lock_pins():
    """make installs the lock with --no-deps; a venv that drifted from it tests something else."""
    lock = LOCK_OF_THIS_MACHINE[platform.system(), platform.machine()]
    drift = {}
    for name, pinned in _pins(lock).items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            drift[name] = f"locks/{lock} pins {pinned}, found {installed or 'nothing'}"
    assert drift == {}, f"this environment differs from locks/{lock}: {drift}"


def _stand_in_python(folder: Path, name: str, *, version: str | None) -> None:
    """A program named like an interpreter that reports `version`, or fails as pyenv's shim of
    a version that is not selected does (exit 127)."""
    body = f'echo "{version}"' if version else 'echo "pyenv: $0: command not found" >&2; exit 127'
    program = folder / name
    program.write_text(f"#!/bin/sh\n{body}\n")
    program.chmod(0o755)


def _pick(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(PICK_PYTHON), *args],
        env={"PATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_newest_supported_python_that_runs_is_picked(tmp_path):
    _stand_in_python(tmp_path, "python3.13", version=None)  # a shim of an unselected version
    _stand_in_python(tmp_path, "python3.12", version="3.12")
    _stand_in_python(tmp_path, "python3.11", version="3.11")
    _stand_in_python(tmp_path, "python3", version="3.14")
    picked = _pick(tmp_path)
    assert picked.returncode == 0, picked.stderr
    assert picked.stdout.strip() == str(tmp_path / "python3.12")
    _stand_in_python(tmp_path, "python3.13", version="3.13")
    assert _pick(tmp_path).stdout.strip() == str(tmp_path / "python3.13")


def test_a_mac_with_only_its_own_python_is_told_what_to_install(tmp_path):
    _stand_in_python(tmp_path, "python3", version="3.9")  # a stock Mac's
    _stand_in_python(tmp_path, "python3.14", version="3.14")  # Homebrew's newest
    picked = _pick(tmp_path)
    assert picked.returncode == 1 and picked.stdout == ""
    assert "needs Python 3.11, 3.12 or 3.13" in picked.stderr
    assert "python3.13: not on PATH" in picked.stderr
    assert "python3 on PATH is Python 3.9" in picked.stderr
    assert "brew install python@3.13" in picked.stderr


def test_a_named_python_is_checked_too(tmp_path):
    _stand_in_python(tmp_path, "python3.14", version="3.14")
    picked = _pick(tmp_path, str(tmp_path / "python3.14"))
    assert picked.returncode == 1 and picked.stdout == ""
    assert f"{tmp_path / 'python3.14'} ({tmp_path / 'python3.14'}): Python 3.14" in picked.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(
    ("platform_name", "message"),
    [
        ("Darwin-x86_64", "Intel Macs are not supported: PyTorch publishes no wheels for x86_64"),
        ("Linux-aarch64", "no lock for Linux-aarch64: locks/ has Linux-x86_64 and Darwin-arm64"),
    ],
)
def test_make_refuses_a_platform_without_a_lock_before_it_makes_a_venv(
    tmp_path, platform_name, message
):
    venv = tmp_path / "venv"
    result = subprocess.run(
        ["make", "--no-print-directory", f"PLATFORM={platform_name}", f"VENV={venv}", "test"],
        cwd=ROOT,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not venv.exists(), "expected no venv made on a platform without a lock"
