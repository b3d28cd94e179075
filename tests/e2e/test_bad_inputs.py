"""Bad inputs end to end: `pytest audits/` on a manifest mixing good and bad rows rejects each
bad row with its one-line reason, audits the rest and still writes the report; a whole-set
problem stops with one line and the report is still written."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from heatcheck.fixtures.bench import CLASS_NAMES, make_bench
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

# (id, image, label, mask cells) → the reason results.json must give
BAD_ROWS = {
    "bad-1,missing.png,circle,m0.png": "image file not found",
    "bad-2,notimage.png,circle,m0.png": "not an image file",
    "bad-3,corrupt.png,circle,m0.png": "cannot read image",
    "bad-4,i0.png,circle,nomask.png": "mask file 'nomask.png' not found",
    "bad-5,i0.png,circle,small.png": "mask is 8x8 but the image is 64x64",
    "bad-6,i1.png,circle,empty.png": "mask is empty",
    "bad-7,i2.png,circle,full.png": "mask covers the whole image",
    "bad-8,i3.png,9,m3.png": "label 9 out of range 0..3",
    "bad-9,i3.png,zebra,m3.png": "unknown class name 'zebra'",
    "bad-10,../../etc/passwd,circle,m0.png": "points outside the manifest's folder",
    "bad-11,/etc/passwd,circle,m0.png": "points outside the manifest's folder",
    "good-0,i0.png,circle,m0.png": "duplicate id 'good-0'",
}


def write_manifest(folder: Path, good: int = 12) -> Path:
    images, labels, masks, _ = make_bench(good, seed=9)
    rows = ["id,image,label,mask"]
    for i in range(good):
        Image.fromarray(images[i]).save(folder / f"i{i}.png")
        Image.fromarray(masks[i].astype(np.uint8) * 255).save(folder / f"m{i}.png")
        rows.append(f"good-{i},i{i}.png,{CLASS_NAMES[labels[i]]},m{i}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "small.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "empty.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(folder / "full.png")
    (folder / "notimage.png").write_text("just text")
    (folder / "corrupt.png").write_bytes((folder / "i0.png").read_bytes()[:200])
    rows += list(BAD_ROWS)
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def run(pytester, *args):
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / "audits" / "test_labels.py"), str(REPO / "audits" / "test_localisation.py"),
        f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"), "-p", "no:cacheprovider",
        "--hc-report-dir", str(report_dir), "--hc-no-cache", *args)
    results = json.loads((report_dir / "results.json").read_text())
    assert (report_dir / "index.html").exists()
    return result, results


def test_every_bad_row_is_rejected_with_its_reason_and_the_rest_is_audited(pytester):
    manifest = write_manifest(pytester.path)
    result, results = run(pytester, "--hc-images", str(manifest), "--hc-methods", "gradcam")
    assert result.ret == 0, results["errors"]
    reasons = {r["id"]: r["reason"] for r in results["images"]["rejected"]}
    assert len(reasons) == len(BAD_ROWS)
    for row, expected in BAD_ROWS.items():  # each row with its own reason
        image_id = row.split(",")[0]
        assert expected in reasons[image_id], (image_id, expected, reasons[image_id])
    assert results["images"]["count"] == 12
    output = result.stdout.str()
    assert "manifest.csv row 14" in output  # each rejected row named on one line


def test_strict_inputs_stop_at_the_first_bad_row(pytester):
    manifest = write_manifest(pytester.path, good=4)
    result, results = run(pytester, "--hc-images", str(manifest), "--hc-methods", "gradcam",
                          "--hc-strict-inputs")
    assert result.ret == 1
    assert results["verdict"] == "fail"
    assert "image file not found" in results["errors"][0]["message"]


def in_a_subprocess(code: str, path: Path) -> Path:
    """Run Keras ``code`` (which writes ``path``) in a fresh interpreter, as the audits run;
    TensorFlow imported in this test process after pytester has run aborts here."""
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=REPO,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return path


NAN_MODEL = """
import sys, keras, numpy as np
inputs = keras.Input((64, 64, 3))
features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(inputs))
model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax", name="head")(features))
kernel, bias = model.get_layer("head").get_weights()
model.get_layer("head").set_weights([np.full_like(kernel, np.nan), bias])  # NaN out for any image
model.save(sys.argv[1])
"""
BENCH_WEIGHTS = """
import sys, keras
keras.saving.load_model("fixtures/bench_models/clean.keras").save_weights(sys.argv[1])
"""


@pytest.mark.parametrize(("setup", "message"), [
    ("missing-manifest", "manifest not found"),
    ("missing-column", "missing column 'label'"),
    ("empty-set", "no usable images"),
    ("missing-model", "model file not found"),
    ("corrupt-model", "cannot load model"),
    ("weights-for-another-architecture", "does not fit"),
    ("nan-output", "output has NaN or Inf for 4 image(s), first at 'bench-0' (index 0)"),
    ("layer-missing", "--hc-layer nope: no such layer"),
    ("layer-not-spatial", "--hc-layer gap: output shape (None, 64) is not"),
])
def test_whole_set_problems_stop_with_one_line_and_still_write_the_report(pytester, setup, message):
    manifest = pytester.path / "manifest.csv"
    args = ["--hc-images", str(manifest)]
    if setup == "missing-column":
        manifest.write_text("image,mask\na.png,b.png\n")
    elif setup == "empty-set":
        manifest.write_text("image,label,mask\nnothing.png,circle,none.png\n")
    elif setup == "missing-model":
        args = ["--hc-model", str(pytester.path / "nope.keras")]
    elif setup == "corrupt-model":
        (pytester.path / "corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip")
        args = ["--hc-model", str(pytester.path / "corrupt.keras")]
    elif setup == "weights-for-another-architecture":
        weights = in_a_subprocess(BENCH_WEIGHTS, pytester.path / "bench.weights.h5")
        args = ["--hc-model", "mobilenet_v2", "--hc-weights", str(weights)]
    elif setup == "nan-output":
        model = in_a_subprocess(NAN_MODEL, pytester.path / "nan.keras")
        args = ["--hc-model", str(model), "--hc-images", "bench:4"]
    elif setup == "layer-missing":
        args = ["--hc-layer", "nope"]
    elif setup == "layer-not-spatial":
        args = ["--hc-layer", "gap"]
    result, results = run(pytester, *args)
    assert result.ret == 1
    assert results["verdict"] == "fail"
    assert results["errors"]
    assert all(message in e["message"] for e in results["errors"]), results["errors"]
    assert "heatcheck: input error: " in result.stdout.str()
    assert message in result.stdout.str()


DELETE_AFTER_PREDICTIONS = """
import os
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    yield
    if fixturedef.argname == "heatcheck_predictions":
        os.remove(os.environ["DELETE_ME"])
"""


def test_an_image_deleted_during_the_run_is_one_input_error_and_the_report_is_written(pytester, monkeypatch):
    """Label consistency has read every image; then one goes, before the map pass reads it again."""
    manifest = write_manifest(pytester.path, good=12)
    (pytester.path / "deleter.py").write_text(DELETE_AFTER_PREDICTIONS)
    monkeypatch.setenv("DELETE_ME", str(pytester.path / "i5.png"))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    result, results = run(pytester, "--hc-images", str(manifest), "--hc-methods", "gradcam", "-p", "deleter")
    assert result.ret == 1
    message = "row 7 (i5.png): image file not found (the file changed after it was checked)"
    assert [c["status"] for c in results["checks"] if c["audit"] == "labels"] == ["passed"]
    assert results["errors"]
    assert all(message in e["message"] for e in results["errors"]), results["errors"]
    lines = [line for line in result.stdout.lines if line.startswith("heatcheck: input error: ")]
    assert len(lines) == 1 + len(BAD_ROWS)  # the rejected rows, then the deleted file once
    assert message in lines[-1]


# --- issue 12: settings refused before anything loads; a new user's folder of photos ----------

@pytest.mark.parametrize(("args", "message"), [
    (["--hc-threshold", "pointing_game=nan"], "--hc-threshold 'pointing_game=nan': a threshold must "
                                              "be a finite"),
    (["--hc-images", "bench:0"], "--hc-images bench:0: N must be a whole number of at least 1"),
    (["--hc-model", "bench:clean", "--hc-preprocess", "foo"], "--hc-preprocess does not apply to "
                                                              "bench model"),
    (["--hc-colormap", "nosuchmap"], "--hc-colormap nosuchmap: unknown colormap"),
])
def test_bad_settings_stop_with_one_usage_line_before_anything_runs(pytester, args, message):
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / "audits"), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-p", "no:cacheprovider", "--hc-report-dir", str(report_dir), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"ERROR: heatcheck: {message}")
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not report_dir.exists()  # stopped before any audit, report or model


def write_photo_folder(folder: Path) -> None:
    """A folder-per-class layout as a new user has one: class folder names (the model has none),
    a latin-1 file name, a black-and-white mask saved as RGBA, a JPEG stored sideways."""
    images, labels, masks, _ = make_bench(8, seed=9)
    classes = [f"{chr(ord('a') + k)}-{name}" for k, name in enumerate(CLASS_NAMES)]  # sorted as the model's
    for i in range(8):
        name = os.fsencode(f"p{i}.png") if i else b"caf\xe9.png"
        image_dir = os.path.join(os.fsencode(folder), b"images", classes[labels[i]].encode())
        mask_dir = os.path.join(os.fsencode(folder), b"masks", classes[labels[i]].encode())
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(mask_dir, exist_ok=True)
        grey = masks[i].astype(np.uint8) * 255
        mask = Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)]), "RGBA") if i == 1 else \
            Image.fromarray(grey)
        if i == 2:  # stored sideways, shown upright: orientation 6 turns it 90° clockwise
            exif = Image.Exif()
            exif[0x0112] = 6
            Image.fromarray(np.ascontiguousarray(np.rot90(images[i], 1))).save(
                os.path.join(image_dir, b"p2.jpg"), exif=exif, quality=95)
        else:
            Image.fromarray(images[i]).save(os.path.join(image_dir, name))
        mask.save(os.path.join(mask_dir, name))


def test_a_folder_of_photos_names_its_classes_and_draws_any_file_name(pytester):
    write_photo_folder(pytester.path / "photos")
    model = REPO / "fixtures" / "bench_models" / "clean.keras"  # a model file: no class names of its own
    result, results = run(pytester, "--hc-images", str(pytester.path / "photos"), "--hc-model", str(model),
                          "--hc-methods", "gradcam")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()[-3000:]
    assert results["errors"] == []
    assert results["images"]["rejected"] == []  # the RGBA mask and the sideways JPEG are fine
    assert results["model"]["class_names"] == ["a-circle", "b-square", "c-triangle", "d-cross"]
    items = {item["id"]: item for item in results["images"]["items"]}
    assert len(items) == 8
    [latin] = [i for i in items if "caf" in i]
    assert latin.endswith("/caf\\xe9.png")
    assert items[latin]["label_name"] in results["model"]["class_names"]
    html = (pytester.path / "reports" / "index.html").read_text(encoding="utf-8")
    assert latin in html  # the final report, with its gallery (drawing it used to crash)
    assert html.count("data:image/png") >= 8
