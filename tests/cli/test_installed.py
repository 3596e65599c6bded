"""The built wheel, installed into a fresh virtual environment, works in a folder of its own (issue 43): the quick
start, decontaminate and an advise dry run from an empty folder, with the evaluation sets in a folder the user
names through $TUNESIFT_DATA_DIR and nothing of this checkout on the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tunesift.data.evalsets import eval_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding the wheel built from this checkout; its dependencies are this environment's packages,
    reached through a path file (whose own .pth files, this checkout's editable install among them, are not
    run)."""
    folder = tmp_path_factory.mktemp("installed")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                            "-w", str(folder / "wheel")], capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (folder / "wheel").glob("tunesift-*.whl")
    env_dir = folder / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", purelib], text=True).strip())
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                           str(site), str(wheel)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    data = folder / "sets"  # a copy of the evaluation files the race and decontamination read
    (data / "eval").mkdir(parents=True)
    for name in ("gsm8k_test.jsonl", "alpaca_eval_805_gpt4_1106_preview.json"):
        shutil.copy(eval_dir() / name, data / "eval" / name)
    for name in ("mmlu", "bbh", "humaneval"):
        shutil.copytree(eval_dir() / name, data / "eval" / name)
    return python, data


def _run(python, cwd, *args, data=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TUNESIFT_DATA_DIR")}
    env["TUNESIFT_CACHE"] = str(cwd / "cache")
    if data is not None:
        env["TUNESIFT_DATA_DIR"] = str(data)
    return subprocess.run([str(python), "-m", "tunesift", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_the_installed_package_works_in_a_folder_of_its_own(installed, tmp_path, tiny_model_dir):
    python, data = installed
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.check_output([str(python), "-c", "import tunesift; print(tunesift.__file__)"], cwd=work,
                                    text=True).strip()  # fmt: skip
    assert str(python.parents[1]) in where and str(ROOT) not in where  # the wheel's code, not this checkout's
    done = _run(python, work, "data", "example", "pool.json")
    assert done.returncode == 0, done.stderr[-2000:]
    done = _run(python, work, "run", "longest", "pool.json", "--rate", "0.1", "--out", "subset.json")
    assert done.returncode == 0 and len(json.loads((work / "subset.json").read_text())) == 30, done.stderr[-2000:]
    # without the sets: one line naming the set and where to get it, nothing written
    done = _run(python, work, "decontaminate", "pool.json", "--against", "gsm8k", "--out", "clean.json")
    assert done.returncode == 2 and "evaluation set 'gsm8k' not found" in done.stderr, done.stderr[-2000:]
    assert "openai/grade-school-math" in done.stderr and not (work / "clean.json").exists()
    done = _run(python, work, "decontaminate", "pool.json", "--against", "gsm8k", "--out", "clean.json", data=data)
    assert done.returncode == 0 and "gsm8k 0 of 1319" in done.stderr, done.stderr[-2000:]
    assert json.loads((work / "clean.manifest.json").read_text())["decontaminate"]["sets"]["gsm8k"]["items"] == 1319
    done = _run(python, work, "advise", "pool.json", "--budget", "0.1", "--methods", "longest", "--base",
                str(tiny_model_dir), "--proxy-size", "100", "--out", "advice", "--dry-run", data=data)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "advise: 100 records of" in done.stderr and not (work / "advice" / "runs").exists()
