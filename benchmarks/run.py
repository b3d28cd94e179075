"""Speed benchmarks: ``python -m benchmarks.run`` (``make bench``) prints one JSON line per workload.

W1  the seed workload (VGG16 weights=None, 4 images 224², Saliency, SmoothGrad(20, 0.2),
    Grad-CAM, Grad-CAM++): the compiled engine vs tf-keras-vis vs the compiled-gradient floor.
W2  `make audit`'s default run, cold map cache and warm.
W3  pointing game, cascading randomisation and max-sensitivity: heatcheck vs the floor (and
    vs Quantus, when ``benchmarks/quantus_side.py`` can run in ``.venv-quantus``).
W4  memory: peak RSS of `pytest audits/` (labels, localisation, faithfulness) on image sets
    read from files, small and 4× larger: what each extra image costs against its pixels and maps.
W5  past one process: the same `pytest audits/` in one process, with pytest-xdist `-n 1` and
    `-n 2`, and as 2 shards run side by side and merged: seconds, speed-ups over `-n 1`, and
    whether each gives one process's results.json and maps.npz (timing fields aside).

Everything is measured in this one run, interleaved, so ratios compare like with like: the
same call varies by ±20 % from run to run on shared 2-core machines. ``--quick`` runs every
workload at toy size to check that the script works (the tests do that).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.workload import SEED_CLASSES, emit, floor_passes, seed_workload, timed

REPO = Path(__file__).resolve().parents[1]

def tf_keras_vis_seed(model: Any, x: np.ndarray, samples: int) -> float:
    """The seed notebook's calls, visualizer clones included."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    score = CategoricalScore(SEED_CLASSES)
    start = time.perf_counter()
    saliency = Saliency(model, model_modifier=ReplaceToLinear(), clone=True)
    saliency(score, x)
    np.random.seed(0)  # noqa: NPY002 -- tf-keras-vis draws SmoothGrad noise from the global generator
    saliency(score, x, smooth_samples=samples, smooth_noise=0.2)
    Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)(score, x, penultimate_layer=-1)
    GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True)(score, x, penultimate_layer=-1)
    return time.perf_counter() - start


def w1(quick: bool) -> dict[str, Any]:
    from heatcheck import models
    from heatcheck.explain.compiled import CompiledEngine
    from heatcheck.settings import METHODS

    samples = 2 if quick else 20
    model, x, labels = seed_workload(quick)
    audit_model = models.wrap(model, "vgg16", "benchmark", preprocess="caffe")
    floor = floor_passes(audit_model.logits_model, audit_model.conv_layer or "", x, labels)
    floor_s = floor["grad"] * (1 + samples) + 2 * floor["cam"]
    engine_build_s, engine = timed(lambda: CompiledEngine(audit_model.logits_model, audit_model.conv_layer,
                                                          audit_model.device, max_batch=128))
    run = lambda methods: engine.explain_many(methods, x, labels, normalise=True,  # noqa: E731
                                              smooth_samples=samples, seed=0)
    trace_s, _ = timed(lambda: run(METHODS))  # first call traces the passes
    run(("gradcam", "gradcampp"))  # … and the CAM-only pass
    engine_s, _ = timed(lambda: run(METHODS))
    cams_s, _ = timed(lambda: run(("gradcam", "gradcampp")))
    tfkv_s = tf_keras_vis_seed(model, x, samples)
    return {"workload": "W1", "engine_s": engine_s, "tf_keras_vis_s": tfkv_s, "floor_s": floor_s,
            "engine_vs_floor": engine_s / floor_s, "tf_keras_vis_vs_engine": tfkv_s / engine_s,
            "engine_first_call_s": engine_build_s + trace_s, "gradcam_pair_s": cams_s,
            "forward_s": floor["forward"], "gradcam_pair_vs_forward": cams_s / floor["forward"],
            "grad_pass_s": floor["grad"], "cam_pass_s": floor["cam"], "smooth_samples": samples}


def w2(quick: bool) -> dict[str, Any]:
    """`pytest audits/` as `make audit` runs it, in a subprocess, cold then warm."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "pytest", str(REPO / "audits"), "-q", "-p", "no:cacheprovider",
                "--hc-report-dir", f"{tmp}/reports", "--hc-cache-dir", f"{tmp}/cache"]
        if quick:
            args += ["--hc-profile", "smoke", "--hc-methods", "saliency,gradcam"]
        times, passes = [], []
        for _ in range(2):
            seconds, _ = timed(lambda: subprocess.run(args, cwd=REPO, capture_output=True, check=False))
            results = json.loads(Path(f"{tmp}/reports/results.json").read_text())
            times.append(seconds)
            passes.append(results["passes"])
    return {"workload": "W2", "cold_s": times[0], "warm_s": times[1], "warm_vs_cold": times[1] / times[0],
            "passes_run_cold": passes[0]["run"], "passes_unshared": passes[0]["unshared"],
            "passes_run_warm": passes[1]["run"], "run_vs_unshared": passes[0]["run"] / passes[0]["unshared"]}


def write_image_set(folder: Path, count: int) -> Path:
    """``count`` bench images (distinct seeds per 250) as PNG files with masks and a manifest."""
    from heatcheck.fixtures.bench import make_bench
    from PIL import Image

    folder.mkdir(parents=True)
    rows = ["id,image,label,mask"]
    for start in range(0, count, 250):
        images, labels, masks, _ = make_bench(min(250, count - start), seed=100 + start)
        for i, (image, label, mask) in enumerate(zip(images, labels, masks, strict=True)):
            Image.fromarray(image).save(folder / f"{start + i}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{start + i}-mask.png")
            rows.append(f"img-{start + i},{start + i}.png,{label},{start + i}-mask.png")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"


def anon_kb(pid: int) -> int | None:
    """The process's resident anonymous memory (heap, not file-backed pages), Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mb(args: list[str]) -> tuple[float, float, float | None]:
    """Seconds, peak resident memory (MB) and peak anonymous memory (MB, sampled every 50 ms) of
    one child process. File-backed pages (the memory-mapped maps) count in the first, not the second:
    the kernel can drop them, so the second is what a set's size really pushes up."""
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    anon_peak: int | None = None
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        sample = anon_kb(child.pid)
        if sample is not None:
            anon_peak = max(anon_peak or 0, sample)
        time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise RuntimeError(f"W4 run failed with exit code {child.returncode}: {' '.join(args)}")
    anon_mb = None if anon_peak is None else anon_peak / 1024
    return time.perf_counter() - start, usage.ru_maxrss / 1024, anon_mb  # ru_maxrss is in kB on Linux


def w4(quick: bool) -> dict[str, Any]:
    counts = (20, 80) if quick else (500, 2000)
    methods = ("saliency", "gradcam")
    seconds, peaks, anon = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            manifest = write_image_set(Path(tmp) / f"set-{count}", count)
            took, peak, anon_peak = peak_memory_mb([
                sys.executable, "-m", "pytest", *(str(REPO / "audits" / f) for f in (
                    "test_labels.py", "test_localisation.py", "test_faithfulness.py")),
                "-q", "-p", "no:cacheprovider", "--hc-no-cache", "--hc-images", str(manifest),
                "--hc-methods", ",".join(methods), "--hc-report-dir", f"{tmp}/reports-{count}"])
            seconds.append(took)
            peaks.append(peak)
            anon.append(anon_peak)
    extra = counts[1] - counts[0]
    per_image_kb = (peaks[1] - peaks[0]) * 1024 / extra
    anon_per_image_kb = None if None in anon else (anon[1] - anon[0]) * 1024 / extra  # type: ignore[operator]
    # What an image would cost held in memory: uint8 RGB pixels, a bool mask, a float32 map per method.
    held_kb = 64 * 64 * (3 + 1 + 4 * len(methods)) / 1024
    return {"workload": "W4", "images": list(counts), "methods": list(methods), "seconds": seconds,
            "peak_rss_mb": peaks, "peak_anon_mb": anon, "rss_kb_per_extra_image": per_image_kb,
            "anon_kb_per_extra_image": anon_per_image_kb, "held_kb_per_image": held_kb,
            "note": "maps live in memory-mapped files: their pages count in RSS, not in anonymous memory"}


TIMING = ("wall_s", "started_utc", "shards", "workers")  # when and how a run ran, not what it found


def same_findings(one: Path, other: Path) -> bool:
    """Whether two runs' results.json (timing aside) and maps.npz are identical."""
    def findings(folder: Path) -> dict[str, Any]:
        results = json.loads((folder / "results.json").read_text())
        results["environment"] = {k: v for k, v in results["environment"].items() if k not in TIMING}
        return dict(results)

    if findings(one) != findings(other):
        return False
    with np.load(one / "maps.npz") as a, np.load(other / "maps.npz") as b:
        return sorted(a.files) == sorted(b.files) and all(
            np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a.files)


def w5(quick: bool) -> dict[str, Any]:
    """One process, `-n 1`, `-n 2`, and 2 shards side by side then merged, on the same bench."""
    images = "bench:12" if quick else "bench:256"
    common = ["-q", "-p", "no:cacheprovider", "--hc-no-cache", "--hc-images", images,
              "--hc-batch-size", "4" if quick else "32",
              *(["--hc-profile", "smoke", "--hc-methods", "saliency,gradcam"] if quick else [])]
    pytest_audits = [sys.executable, "-m", "pytest", str(REPO / "audits"), *common]
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)

        def run(name: str, *args: str) -> None:
            command = [*pytest_audits, "--hc-report-dir", str(out / name), *args]
            took, done = timed(lambda: subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                                      check=False))
            if not (out / name / "results.json").exists():
                raise RuntimeError(f"W5 {name} wrote no results: {done.stdout[-2000:]}")
            seconds[name] = took

        run("one")
        run("n1", "-n", "1")
        run("n2", "-n", "2")
        start = time.perf_counter()
        shards = [subprocess.Popen([*pytest_audits, "--hc-report-dir", str(out / f"shard-{i}"), "--hc-shard",
                                    f"{i}/2"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for i in range(2)]
        for shard in shards:
            shard.wait()
        merge = [sys.executable, "-m", "heatcheck", "merge", str(out / "shard-0"), str(out / "shard-1"),
                 "-o", str(out / "shards2")]
        merge_s, _ = timed(lambda: subprocess.run(merge, cwd=REPO, capture_output=True, check=False))
        seconds["shards2"] = time.perf_counter() - start
        identical = {name: same_findings(out / "one", out / name) for name in ("n1", "n2", "shards2")}
        checks = len(json.loads((out / "one" / "results.json").read_text())["checks"])
    return {"workload": "W5", "images": images, "one_process_s": seconds["one"], "n1_s": seconds["n1"],
            "n2_s": seconds["n2"], "shards2_s": seconds["shards2"], "merge_s": merge_s,
            "speedup_n2_vs_n1": seconds["n1"] / seconds["n2"],
            "speedup_shards2_vs_n1": seconds["n1"] / seconds["shards2"],
            "checks": checks, "identical_to_one_process": identical}


def w3(quick: bool, quantus: dict[str, float | str]) -> list[dict[str, Any]]:
    from benchmarks.metrics_side import heatcheck_metrics

    lines = []
    for metric, values in heatcheck_metrics(quick).items():
        peer = quantus.get(metric)
        lines.append({"workload": "W3", "metric": metric, **values,
                      "quantus_s": peer if isinstance(peer, float) else None,
                      **({"quantus_note": quantus["note"]} if "note" in quantus else {})})
    return lines


def quantus_times(quick: bool) -> dict[str, float | str]:
    """Run the Quantus side in its own virtualenv (Quantus pins keras<3); a note when absent."""
    python = REPO / ".venv-quantus" / "bin" / "python"
    if not python.exists():
        return {"note": "Quantus not measured: .venv-quantus missing (make bench-peers creates it)"}
    out = subprocess.run([str(python), "-m", "benchmarks.quantus_side", *(["--quick"] if quick else [])],
                         cwd=REPO, capture_output=True, text=True, check=False)
    try:
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        return {"note": f"Quantus side failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the script, not speed")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    emit({"machine": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "tensorflow": tf.__version__, "gpu": [d.name for d in tf.config.list_physical_devices("GPU")],
          "quick": args.quick})
    chosen = args.workloads.split(",")
    if "W1" in chosen:
        emit(w1(args.quick))
    if "W2" in chosen:
        emit(w2(args.quick))
    if "W3" in chosen:
        for line in w3(args.quick, quantus_times(args.quick)):
            emit(line)
    if "W4" in chosen:
        emit(w4(args.quick))
    if "W5" in chosen:
        emit(w5(args.quick))


if __name__ == "__main__":
    main()
