"""Dockerfile and docker-compose.yml, checked without a Docker engine (none runs on CI here).

The image's dependency layer is built from a handful of files copied before the source: the test
proves a package install works from exactly those files, so the layer cannot break silently.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _instructions() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    return [(m.group(1).upper(), m.group(2)) for line in lines
            if (m := re.match(r"^\s*([A-Za-z]+)\s+(.*)$", line)) and not line.lstrip().startswith("#")]


def test_dockerfile_is_slim_non_root_and_runs_run_bot():
    steps = _instructions()
    assert steps[0][0] == "FROM" and re.match(r"python:3\.1[1-9]-slim", steps[0][1])
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    entry = [arg for op, arg in steps if op in ("ENTRYPOINT", "CMD")]
    assert any("run_bot.py" in arg for arg in entry)
    last_user = max(i for i, (op, _) in enumerate(steps) if op == "USER")
    first_run_cmd = min(i for i, (op, _) in enumerate(steps) if op in ("ENTRYPOINT", "CMD"))
    assert last_user < first_run_cmd, "the bot must not run as root"


def test_every_copied_path_exists():
    for op, arg in _instructions():
        if op != "COPY":
            continue
        sources = [a for a in arg.split() if not a.startswith("--")][:-1]
        for source in sources:
            assert source == "." or (ROOT / source).exists(), source


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to copy the tree")
def test_dependency_layer_installs_from_the_files_copied_first(tmp_path):
    copied = []
    for op, arg in _instructions():
        if op == "COPY":
            parts = [a for a in arg.split() if not a.startswith("--")]
            if parts[0] == ".":
                break
            copied.append(parts)
    for parts in copied:
        *sources, dest = parts
        for source in sources:
            target = tmp_path / (dest if not dest.endswith("/") and dest not in (".", "./") else source)
            if dest in (".", "./"):
                target = tmp_path / source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "-w", str(tmp_path / "dist"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "dist").glob("clinic_bot-*.whl"))


def test_compose_runs_the_bot_against_postgresql():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    bot = services["bot"]
    assert bot["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
