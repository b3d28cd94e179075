"""``heatcheck init``: what a repository needs to run heatcheck in CI, written once.

It never overwrites: a file that exists is left alone and said so; a pyproject.toml that has
no ``[tool.heatcheck]`` table gets one appended.
"""

from __future__ import annotations

from pathlib import Path

PYPROJECT_TABLE = """
[tool.heatcheck]
# heatcheck's audits: `heatcheck audit` or `pytest --pyargs heatcheck.suite`. Every key can be
# overridden on the command line (--hc-KEY). Thresholds, margins and tolerances default to
# heatcheck's own (heatcheck/defaults.toml); override one with e.g.
# [tool.heatcheck.thresholds.pointing_game] default = 0.2
model = "models/classifier.keras"      # a .keras/.h5 file, a SavedModel, vgg16 + weights, module:function
images = "data/audit/manifest.csv"     # columns image,label,mask (or box, or annotation)
profile = "ci"                         # smoke | ci | full
report_dir = "reports"
"""

GITHUB_ACTIONS = """# heatcheck: audit what the classifier looks at, on every push.
name: heatcheck
on: [push, pull_request]
jobs:
  audit:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {python-version: "3.11"}
      - run: pip install heatcheck
      - uses: actions/cache@v4           # maps computed once per model and image
        with:
          path: .heatcheck_cache
          key: heatcheck-maps-${{ hashFiles('models/**', 'data/audit/**') }}
      - run: heatcheck audit --junitxml=reports/junit.xml   # exits 1 on a failed verdict
      - uses: actions/upload-artifact@v4
        if: always()
        with: {name: heatcheck-report, path: reports/}
"""

GITLAB_CI = """# heatcheck: audit what the classifier looks at (include this file from .gitlab-ci.yml).
heatcheck:
  image: python:3.11
  script:
    - pip install heatcheck
    - heatcheck audit --junitxml=reports/junit.xml   # exits 1 on a failed verdict
  cache:
    key: heatcheck-maps
    paths: [.heatcheck_cache/]
  artifacts:
    when: always
    paths: [reports/]
    reports:
      junit: reports/junit.xml
"""


def write_starter(folder: Path) -> list[str]:
    """Write the starter files into ``folder``; one line per file saying what was done."""
    lines = []
    pyproject = folder / "pyproject.toml"
    text = pyproject.read_text("utf-8") if pyproject.exists() else ""
    if "[tool.heatcheck]" in text:
        lines.append(f"{pyproject}: already has [tool.heatcheck]; left alone")
    else:
        pyproject.write_text(text + PYPROJECT_TABLE, "utf-8")
        lines.append(f"{pyproject}: [tool.heatcheck] {'appended' if text else 'written'}")
    for path, content in ((folder / ".github" / "workflows" / "heatcheck.yml", GITHUB_ACTIONS),
                          (folder / "ci" / "heatcheck.gitlab-ci.yml", GITLAB_CI)):
        if path.exists():
            lines.append(f"{path}: exists; left alone")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, "utf-8")
        lines.append(f"{path}: written")
    return lines
