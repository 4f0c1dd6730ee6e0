"""The image's install recipe (``deploy/install.sh``, which ``deploy/Dockerfile`` runs in its build stage) run
outside Docker, on the files the Dockerfile copies: a fresh virtual environment gets the request path compiled
with mypyc, keeps none of the build's own tools, and serves requests from the installed package.

Where no Docker engine runs (the build machine), the docker tier cannot build the image; this runs the same
commands, so a broken recipe fails here too (slow tier: about 3 minutes of one core)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from tests.conftest import CLIENT_KEY, basic_config
from tests.deploy.test_static import ROOT, dockerfile_instructions
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_runner import GatewayProcess

BUILD_ONLY = ("mypy", "types-PyYAML", "psycopg", "wheel")
"""What the recipe installs for the build and removes after it."""


def build_context(dest: Path) -> None:
    """The files the Dockerfile's build stage copies from the repository, where it copies them (a target ending
    in ``/`` receives the sources; a directory's contents go to its target)."""
    for w, rest in dockerfile_instructions():
        if w != "COPY" or "--from" in rest:
            continue
        *sources, target = shlex.split(rest)
        if target.startswith("/"):  # (the runtime stage's config file)
            continue
        for src in sources:
            s, t = ROOT / src, dest / target
            if s.is_dir():
                shutil.copytree(s, t, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
                continue
            if target.endswith("/"):
                t = t / s.name
            t.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, t)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    src, venv = root / "src", root / "venv"
    build_context(src)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"POINTSMAN_COMPILE": "1"}
    r = subprocess.run(
        ["sh", "deploy/install.sh", str(venv)], cwd=src, env=env, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "request-path modules compiled with mypyc" in r.stdout.splitlines()[-1]
    return venv


@pytest.mark.slow
def test_the_recipe_leaves_no_build_tool_in_the_environment(image_venv: Path) -> None:
    r = subprocess.run(
        [str(image_venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {line.split("==")[0].lower() for line in r.stdout.splitlines()}
    assert "pointsman" in installed
    assert not installed & {p.lower() for p in BUILD_ONLY}


@pytest.mark.slow
def test_the_installed_compiled_gateway_serves_requests_and_streams(image_venv: Path, tmp_path: Path) -> None:
    fake = FakeOpenAI().start()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    gw = GatewayProcess(basic_config(fake.url), tmp_path, command=[str(image_venv / "bin" / "pointsman")])
    gw.env = env  # nothing of this checkout on the path: the installed package only
    try:
        gw.start(timeout=60)
        client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY)
        chat = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        assert chat.choices[0].message.content and chat.usage is not None
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].usage is not None and "".join(
            c.choices[0].delta.content or "" for c in chunks if c.choices
        )
        client.close()
    finally:
        gw.stop()
        fake.stop()
    log = gw.log.read_text()
    assert "request-path modules compiled with mypyc" in log, log[-2000:]


def test_the_dockerfile_installs_with_this_recipe() -> None:
    runs = [rest for w, rest in dockerfile_instructions() if w == "RUN"]
    assert any("sh deploy/install.sh /opt/pointsman" in r for r in runs), runs
    assert not any("pip install" in r for r in runs), "the image installs through deploy/install.sh only"
