"""The method registry (heatcheck.explain.methods) is the one place that knows the methods."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import heatcheck
from heatcheck.explain import methods as registry
from heatcheck.settings import SettingsError, parse_methods

PACKAGE = Path(heatcheck.__file__).parent
# Modules allowed to name a method in a string literal, and why: the registry itself; the two
# engines, which compute each model method; the provider, which dispatches each control to its
# map function; localisation, whose negative control "edges" is the same Sobel map by design.
COMPUTES_METHODS = {"explain/methods.py", "explain/compiled.py", "explain/reference.py",
                    "explain/provider.py", "checks/localisation.py"}


def test_methods_and_controls_partition_the_registry() -> None:
    assert set(registry.METHODS) | set(registry.CONTROLS) == set(registry.REGISTRY)
    assert not set(registry.METHODS) & set(registry.CONTROLS)
    assert all(registry.get(name).is_control for name in registry.CONTROLS)
    assert [m for m in registry.REGISTRY] == [*registry.METHODS, *registry.CONTROLS]


def test_the_settings_accept_exactly_the_registry() -> None:
    assert parse_methods(",".join(registry.REGISTRY)) == tuple(registry.REGISTRY)
    with pytest.raises(SettingsError, match="unknown method lime"):
        parse_methods("gradcam,lime")


def test_what_each_method_needs_and_costs() -> None:
    assert [m for m in registry.METHODS if registry.get(m).needs_conv_layer] == ["gradcam", "gradcampp"]
    assert [m for m in registry.METHODS if registry.get(m).smoothed] == ["smoothgrad"]
    assert [m for m in registry.METHODS if registry.get(m).shares_gradient_pass] == [
        "saliency", "gradcam", "gradcampp"]
    assert not any(registry.get(m).shares_gradient_pass for m in registry.CONTROLS)
    with pytest.raises(KeyError, match="unknown method 'lime'"):
        registry.get("lime")


def test_report_order_and_labels_keep_unknown_methods() -> None:
    assert registry.in_order(["mine", "noise", "gradcampp", "saliency"]) == [
        "saliency", "gradcampp", "noise", "mine"]
    assert registry.label("gradcampp") == "Grad-CAM++"
    assert registry.label("mine") == "mine"  # a user's own audit keeps its name


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_other_module_hard_codes_a_method() -> None:
    """Knowledge of a method lives in the registry and the code that computes it, nowhere else."""
    names = set(registry.REGISTRY)
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in COMPUTES_METHODS or relative.startswith(("suite/", "fixtures/")):
            continue
        found = _string_literals(path) & names
        if found:
            offenders[relative] = sorted(found)
    assert offenders == {}
