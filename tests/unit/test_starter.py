"""`heatcheck init`: the starter it writes parses, and nothing a repository has is overwritten."""

from __future__ import annotations

import tomllib
from pathlib import Path

from heatcheck.__main__ import main
from heatcheck.starter import write_starter


def test_init_writes_a_parsing_table_and_both_ci_jobs(tmp_path: Path) -> None:
    lines = write_starter(tmp_path)
    table = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["heatcheck"]
    assert table["profile"] == "ci"
    workflow = (tmp_path / ".github" / "workflows" / "heatcheck.yml").read_text()
    assert "heatcheck audit" in workflow
    assert "upload-artifact" in workflow
    assert ".heatcheck_cache" in workflow
    assert "artifacts" in (tmp_path / "ci" / "heatcheck.gitlab-ci.yml").read_text()
    assert len(lines) == 3


def test_init_appends_to_a_pyproject_and_overwrites_nothing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "theirs"\n')
    write_starter(tmp_path)
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert data["project"]["name"] == "theirs"
    assert "heatcheck" in data["tool"]
    again = write_starter(tmp_path)
    assert all("left alone" in line for line in again)


def test_the_command_without_arguments_prints_its_usage(capsys) -> None:
    assert main([]) == 2
    assert "audit" in capsys.readouterr().out
