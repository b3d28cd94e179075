"""The seed notebook's workflow, runnable: VGG16 with a weights file on photographs with boxes.

Real ImageNet weights cannot be downloaded here, so the test writes VGG16(weights=None)'s
weights to a file and audits with `--hc-weights FILE`: the same code path as a real weights
file. The photographs are the ones scikit-image ships (chelsea the cat, coffee), with
boxes the test draws.
"""

import csv
import json
from pathlib import Path

import keras
import pytest
from PIL import Image
from skimage import data as skdata

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PHOTOS = {  # name: (loader, ImageNet class name, box x0,y0,x1,y1 in the original photo)
    "chelsea": (skdata.chelsea, "tabby", "140,20,330,290"),
    "coffee": (skdata.coffee, "cup", "100,40,480,320"),
}


def test_vgg16_with_a_weights_file_on_photographs_with_boxes(pytester):
    keras.utils.set_random_seed(0)
    weights = pytester.path / "vgg16.weights.h5"
    keras.applications.VGG16(weights=None).save_weights(weights)
    with (pytester.path / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "box"])
        for name, (load, label, box) in PHOTOS.items():
            Image.fromarray(load()).save(pytester.path / f"{name}.png")
            writer.writerow([f"{name}.png", label, box])
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO / "audits"), f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        "-p", "no:cacheprovider",
        "--hc-model", "vgg16", "--hc-weights", str(weights),
        "--hc-images", str(pytester.path / "manifest.csv"), "--hc-report-dir", str(report_dir),
        "--hc-no-cache", "--hc-profile", "smoke", "--hc-methods", "saliency,gradcam",
        "--hc-sanity-images", "1", "--hc-stability-images", "1", timeout=1500)
    results = json.loads((report_dir / "results.json").read_text())
    assert results["model"]["spec"] == "vgg16"
    assert results["model"]["preprocess"] == "caffe"
    assert results["model"]["input_shape"] == [224, 224, 3]
    assert results["images"]["count"] == 2
    assert results["errors"] == [], result.stdout.str()[-3000:]
    assert results["not_run"] == []
    audits = {c["audit"] for c in results["checks"]}
    assert audits == {"labels", "localisation", "sanity", "stability", "faithfulness"}
    skipped = [c for c in results["checks"] if c["status"] == "skipped"]
    assert skipped, "data randomisation needs --hc-random-label-model: it must say so"
    assert all("--hc-random-label-model" in c["reason"] for c in skipped)
    names = {item["label_name"] for item in results["images"]["items"]}
    assert names == {"tabby", "cup"}
    assert (report_dir / "index.html").exists()
