"""Settings: pyproject's [tool.heatcheck], command-line overrides, and clear errors."""

import pytest

from heatcheck.settings import Settings, SettingsError, build_thresholds, parse_methods

TABLE = {"pointing_game": {"default": 0.35, "gradcam": 0.6}, "label_agreement": 0.9}


def test_per_method_threshold_then_default():
    t = build_thresholds(TABLE, [])
    assert t.get("pointing_game", "gradcam") == 0.6
    assert t.get("pointing_game", "saliency") == 0.35
    assert t.get("label_agreement") == 0.9
    assert t.source_of("pointing_game", "gradcam") == "pyproject"


def test_command_line_overrides_and_says_so():
    t = build_thresholds(TABLE, ["pointing_game.saliency=0.5", "label_agreement=0.8"])
    assert t.get("pointing_game", "saliency") == 0.5
    assert t.get("pointing_game", "smoothgrad") == 0.35
    assert t.get("label_agreement") == 0.8
    assert t.source_of("pointing_game", "saliency") == "command line"


@pytest.mark.parametrize(("item", "message"), [
    ("nonsense=0.5", "unknown metric 'nonsense'"),
    ("pointing_game=high", "expected metric"),
    ("pointing_game", "unknown metric|expected"),
])
def test_bad_threshold_overrides_are_refused(item, message):
    with pytest.raises(SettingsError, match=message):
        build_thresholds(TABLE, [item])


def test_unknown_threshold_names_the_metric():
    with pytest.raises(SettingsError, match="no threshold for 'faithfulness'"):
        build_thresholds(TABLE, []).get("faithfulness")


def test_methods_are_parsed_and_checked():
    assert parse_methods(" GradCAM, edges ") == ("gradcam", "edges")
    with pytest.raises(SettingsError, match="unknown method gradcam3"):
        parse_methods("gradcam3")


def test_pyproject_then_command_line(pytester):
    pytester.makepyprojecttoml("""
        [tool.heatcheck]
        model = "bench:shortcut"
        seed = 7
        methods = ["gradcam", "saliency"]
        [tool.heatcheck.thresholds]
        label_agreement = 0.5
    """)
    pytester.makeconftest('pytest_plugins = ["heatcheck.plugin"]')
    pytester.makepyfile("""
        from heatcheck.plugin import SETTINGS_KEY

        def test_settings(pytestconfig):
            s = pytestconfig.stash[SETTINGS_KEY]
            assert (s.model, s.seed, s.methods) == ("bench:shortcut", 3, ("gradcam", "saliency"))
            assert s.thresholds.get("label_agreement") == 0.5
    """)
    result = pytester.runpytest("--seed", "3", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["heatcheck 0.1.0: profile=ci model=bench:shortcut*seed=3"])


def test_bad_option_is_a_usage_error(pytester):
    pytester.makeconftest('pytest_plugins = ["heatcheck.plugin"]')
    result = pytester.runpytest("--methods", "nope", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*heatcheck: --methods: unknown method nope*"])


@pytest.mark.parametrize(("field", "option"), [("batch_size", "--batch-size"), ("top_k", "--top-k"),
                                               ("sanity_images", "--sanity-images"),
                                               ("stability_images", "--stability-images")])
def test_counts_below_one_are_refused_with_the_option(field: str, option: str) -> None:
    with pytest.raises(SettingsError, match=f"{option} must be at least 1, not 0"):
        Settings(**{field: 0})
