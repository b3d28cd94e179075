"""``heatcheck tolerances``: the baseline gate's tolerances measured on runs of equally good
models (heatcheck.checks.tolerances), with known changes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from heatcheck.__main__ import main as heatcheck_main
from heatcheck.checks.tolerances import ToleranceRunsError, group_runs, load_runs, spread, tolerance_table

IDS = [f"img-{i}" for i in range(6)]


def _check(metric: str, method: str | None, values: list[float], audit: str = "localisation",
           direction: str = "higher", status: str = "passed") -> dict:
    return {"audit": audit, "metric": metric, "method": method, "value": sum(values) / len(values),
            "direction": direction, "status": status, "per_image": dict(zip(IDS, values, strict=True))}


def _write_run(folder: Path, model: str, seed: int, shift: float, saliency_shift: float) -> Path:
    """One model's run: every Grad-CAM(++) value moved by ``shift``, Saliency's by ``saliency_shift``."""
    base = [0.2, 0.4, 0.6, 0.3, 0.5, 0.7]
    checks = [
        _check("energy_pointing_game", "gradcam", [v + shift for v in base]),
        _check("energy_pointing_game", "gradcampp", [v + shift / 2 for v in base]),
        _check("energy_pointing_game", "saliency", [v + saliency_shift for v in base]),
        _check("max_sensitivity", "gradcam", [v - shift for v in base], audit="stability", direction="lower"),
        _check("max_sensitivity", "saliency", base, audit="stability", direction="lower", status="skipped"),
        _check("top_1_agreement", None, [1.0] * 5 + [1.0 - abs(shift) * 10], audit="labels"),
    ]
    results = {"schema": "heatcheck/1", "model": {"spec": model, "sha256": model},
               "images": {"items": [{"id": i} for i in IDS]},
               "environment": {"audit_settings": {"seed": seed, "profile": "ci"}}, "checks": checks}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    shifts = {"m1": (0.0, 0.0), "m2": (0.03, 0.1), "m3": (-0.02, 0.05)}
    return [_write_run(tmp_path / f"{m}-s{s}", m, s, *shifts[m]) for m in shifts for s in (0, 1)]


def test_each_tolerance_is_the_largest_change_between_two_models(runs):
    groups = group_runs(load_runs(runs))
    assert sorted(len(g) for g in groups) == [3, 3]  # one group per image seed
    measured = spread(groups)
    assert measured["energy_pointing_game", "gradcam"] == pytest.approx(0.05)  # m2 against m3
    assert measured["energy_pointing_game", "gradcampp"] == pytest.approx(0.025)
    assert measured["energy_pointing_game", "saliency"] == pytest.approx(0.1)
    assert measured["max_sensitivity", "gradcam"] == pytest.approx(0.05)
    assert ("max_sensitivity", "saliency") not in measured  # skipped: not compared
    assert measured["label_agreement", None] == pytest.approx(0.3 / 6)  # m1 against m2


def test_the_table_reads_back_as_the_gate_reads_it(runs):
    text = tolerance_table(spread(group_runs(load_runs(runs))))
    table = tomllib.loads(text)["tool"]["heatcheck"]["tolerances"]
    assert table["label_agreement"] == 0.05
    # The default is the CAM methods' largest; Saliency, which moved more, gets its own.
    assert table["energy_pointing_game"] == {"default": 0.05, "saliency": 0.1}
    assert table["max_sensitivity"] == {"default": 0.05}
    assert "gradcam 0.050" in text


def test_runs_without_a_partner_or_of_one_model_are_refused_with_one_line(tmp_path, runs, capsys):
    with pytest.raises(ToleranceRunsError, match="m1-s0.*no partner"):
        group_runs(load_runs(runs[:1] + runs[3:4]))
    again = _write_run(tmp_path / "m1-again", "m1", 0, 0.0, 0.0)
    with pytest.raises(ToleranceRunsError, match="the same model"):
        group_runs(load_runs([runs[0], again]))
    assert heatcheck_main(["tolerances", str(runs[0]), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "missing" in err[0]


def test_the_command_prints_the_table(runs, capsys):
    assert heatcheck_main(["tolerances", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# 6 runs, 2 image set(s), 6 pair(s) compared")
    assert tomllib.loads(out)["tool"]["heatcheck"]["tolerances"]["energy_pointing_game"]["default"] == 0.05
