"""Presets ship inside the wheel and are found from an installed (non-editable) package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from huale.engine.loop_config import load_loop_config, read_config_text
from huale.errors import ConfigError
from huale.presets import preset_names, preset_text

ROOT = Path(__file__).resolve().parents[1]


def test_presets_are_listed_and_read():
    names = preset_names()
    assert {"synthetic-cpu", "bccd"} <= set(names)
    assert "loop:" in preset_text("synthetic-cpu")
    assert preset_text("no-such-preset") is None
    with pytest.raises(ConfigError, match="presets: .*synthetic-cpu"):
        read_config_text("no-such-preset")


def test_a_file_wins_over_a_preset_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("synthetic-cpu").write_text(preset_text("synthetic-cpu").replace("cycles: 4", "cycles: 5"))
    assert load_loop_config("synthetic-cpu").loop.cycles == 5


def test_presets_are_inside_the_wheel_and_found_from_it(tmp_path):
    # build from a copy, so the checkout gets no build/ or egg-info folders
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(wheels), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = wheels.glob("huale-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(n).name for n in archive.namelist() if n.startswith("huale/presets/")}
        archive.extractall(tmp_path / "installed")
    expected = {f"{name}.yaml" for name in preset_names()}
    assert expected <= shipped

    # a fresh interpreter importing huale from the unpacked wheel only (not from src/)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import huale; from huale.presets import preset_names;"
        "from huale.engine.loop_config import load_loop_config;"
        "config = load_loop_config('synthetic-cpu');"
        "print(json.dumps([huale.__file__, preset_names(), config.name]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "installed")],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env,
    )
    module_file, names, config_name = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(module_file).is_relative_to(tmp_path / "installed")
    assert names == preset_names()
    assert config_name == load_loop_config("synthetic-cpu").name
