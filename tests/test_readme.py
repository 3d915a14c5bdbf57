"""The README's recipes: every Python block runs as pasted (in order, in an empty folder, in a fresh process),
and every `moleblend ...` command line in it parses with the real parser (so no option it shows is misspelt)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_moleblend.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def command_lines(text: str) -> list[str]:
    """Shell lines with their backslash continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split("  #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_every_moleblend_command_in_the_readme_parses():
    parser = build_parser()
    commands = [line for block in blocks("bash") for line in command_lines(block) if line.startswith("moleblend ")]
    makefile = (ROOT / "Makefile").read_text()
    commands += [
        "moleblend " + line.split("/moleblend ", 1)[1] for line in command_lines(makefile) if "/moleblend " in line
    ]
    assert len(commands) >= 10
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv == ["--help"]:
            continue
        parser.parse_args(argv)  # SystemExit (a misspelt or missing option) fails the test


@pytest.mark.slow
def test_every_python_recipe_runs_as_pasted(tmp_path):
    code = "\n\n".join(blocks("python"))
    assert "finetune(FinetuneArguments(" in code and "export_for_hub" in code
    script = tmp_path / "recipes.py"
    script.write_text(code)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="2")
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "'error'" in completed.stdout and "'mean'" in completed.stdout  # the pipeline's error entry, the result
    assert (tmp_path / "hub_repo" / "config.json").is_file() and (tmp_path / "esol_run" / "results.json").is_file()
