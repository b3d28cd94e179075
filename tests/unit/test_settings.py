"""Settings: pyproject's [tool.heatcheck], command-line overrides, and clear errors."""

from pathlib import Path

import pytest

from heatcheck.settings import (
    Settings,
    SettingsError,
    build_thresholds,
    check_colormap,
    check_report_dir,
    parse_methods,
)

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
    pass  # the plugin loads through its pytest11 entry point
    pytester.makepyfile("""
        from heatcheck.plugin import SETTINGS_KEY

        def test_settings(pytestconfig):
            s = pytestconfig.stash[SETTINGS_KEY]
            assert (s.model, s.seed, s.methods) == ("bench:shortcut", 3, ("gradcam", "saliency"))
            assert s.thresholds.get("label_agreement") == 0.5
    """)
    result = pytester.runpytest("--hc-seed", "3", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["heatcheck 0.1.0: profile=ci model=bench:shortcut*seed=3"])


def test_bad_option_is_a_usage_error(pytester):
    pass  # the plugin loads through its pytest11 entry point
    result = pytester.runpytest("--hc-methods", "nope", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*heatcheck: --hc-methods: unknown method nope*"])


@pytest.mark.parametrize(("field", "option"), [("batch_size", "--hc-batch-size"), ("top_k", "--hc-top-k"),
                                               ("sanity_images", "--hc-sanity-images"),
                                               ("stability_images", "--hc-stability-images")])
def test_counts_below_one_are_refused_with_the_option(field: str, option: str) -> None:
    with pytest.raises(SettingsError, match=f"{option} must be at least 1, not 0"):
        Settings(**{field: 0})


# --- every bad setting refused before TensorFlow loads, with one line (issue 12) ---------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_threshold_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match=f"--hc-threshold 'pointing_game={value}': .*finite number"):
        build_thresholds(TABLE, [f"pointing_game={value}"])


def test_threshold_for_an_unknown_method_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown method 'gradkam'; choose from .*noise or default"):
        build_thresholds(TABLE, ["pointing_game.gradkam=0"])
    t = build_thresholds(TABLE, ["pointing_game.edges=0.1", "pointing_game.default=0.2"])
    assert (t.get("pointing_game", "edges"), t.get("pointing_game", "noise")) == (0.1, 0.2)


@pytest.mark.parametrize(("table", "message"), [
    ({"pointing_game": {"default": float("nan")}}, r"\[tool.heatcheck.thresholds\] pointing_game.default"),
    ({"pointing_game": {"gradkam": 0.5}}, r"pointing_game.gradkam = 0.5: unknown method 'gradkam'"),
    ({"label_agreement": float("inf")}, r"label_agreement = inf: .*finite number"),
    ({"label_agreement": "high"}, r"label_agreement = 'high': expected a number"),
])
def test_bad_thresholds_in_pyproject_are_refused(table: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        build_thresholds(table, [])


def test_negative_seed_is_refused() -> None:
    with pytest.raises(SettingsError, match="--hc-seed must be 0 or more, not -1"):
        Settings(seed=-1)


@pytest.mark.parametrize("spec", ["bench:0", "bench:-2", "bench:x", "bench:"])
def test_bench_image_count_is_checked_up_front(spec: str) -> None:
    with pytest.raises(SettingsError, match=f"--hc-images {spec}: N must be a whole number of at least 1"):
        Settings(images=spec)
    assert Settings(images="bench:3").images == "bench:3"


@pytest.mark.parametrize(("field", "value", "option"), [
    ("preprocess", "foo", "--hc-preprocess"), ("output", "5", "--hc-output"),
    ("weights", "imagenet", "--hc-weights"), ("unsafe_model", True, "--hc-unsafe-model"),
    ("class_names_file", "names.txt", "--hc-class-names"),
])
def test_options_that_do_not_apply_to_a_bench_model_are_refused(field: str, value: object,
                                                                option: str) -> None:
    with pytest.raises(SettingsError, match=f"{option} does not apply to bench model bench:clean"):
        Settings(model="bench:clean", **{field: value})
    assert getattr(Settings(model="vgg16", **{field: value}), field) == value


@pytest.mark.parametrize("field", ["smooth_noise", "stability_max_sigma", "stability_max_brightness"])
def test_non_finite_numbers_are_refused(field: str) -> None:
    with pytest.raises(SettingsError, match=f"{field} must be a finite number"):
        Settings(**{field: float("nan")})


def test_unknown_colormap_is_refused() -> None:
    with pytest.raises(SettingsError, match="--hc-colormap nosuchmap: unknown colormap; try jet, viridis"):
        check_colormap("nosuchmap")
    check_colormap("cividis")


def test_report_dir_must_be_creatable_and_writable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="--hc-report-dir /proc/forbidden: cannot write there"):
        check_report_dir(Path("/proc/forbidden"))
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="--hc-report-dir .*file/reports: cannot write there"):
        check_report_dir(tmp_path / "file" / "reports")
    check_report_dir(tmp_path / "new" / "reports")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # the check leaves nothing behind
    check_report_dir(tmp_path)


@pytest.mark.parametrize(("line", "message"), [
    ('seed = "zero"', "seed = 'zero': expected int"),
    ("seed = 1.5", "seed = 1.5: expected int"),
    ('smooth_noise = "a lot"', "smooth_noise = 'a lot': expected float"),
])
def test_bad_pyproject_value_is_a_usage_error_not_a_traceback(pytester, line: str, message: str) -> None:
    pytester.makepyprojecttoml(f"""
        [tool.heatcheck]
        {line}
    """)
    pass  # the plugin loads through its pytest11 entry point
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"heatcheck: [tool.heatcheck] {message}" in result.stderr.str()


@pytest.mark.parametrize(("args", "message"), [
    (["--hc-colormap", "nosuchmap"], "--hc-colormap nosuchmap: unknown colormap"),
    (["--hc-report-dir", "/proc/forbidden"], "--hc-report-dir /proc/forbidden: cannot write there"),
    (["--hc-threshold", "pointing_game=nan"], "--hc-threshold 'pointing_game=nan'"),
    (["--hc-model", "bench:clean", "--hc-output", "5"], "--hc-output does not apply to bench model"),
])
def test_bad_options_are_refused_at_configure_time(pytester, args: list[str], message: str) -> None:
    pytester.makepyprojecttoml("""
        [tool.heatcheck.thresholds]
        pointing_game = 0.35
    """)
    pass  # the plugin loads through its pytest11 entry point
    result = pytester.runpytest(*args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [f"ERROR: heatcheck: {errors[0].split('heatcheck: ', 1)[1]}"]
    assert message in errors[0]
