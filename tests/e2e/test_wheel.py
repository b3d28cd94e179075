"""heatcheck as a user installs it: the wheel built from this checkout, installed into a fresh
virtual environment outside the repository, run from an empty folder. The environment reuses
this one's installed dependencies (TensorFlow is 2 GB) through a .pth line, but heatcheck itself
comes only from the wheel: nothing of this checkout is importable there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

CUSTOM_AUDIT = '''
import pytest
from heatcheck.metrics.pointing import energy_pointing_game

pytestmark = pytest.mark.heatcheck_audit


def test_energy_on_the_object(heatcheck_maps, heatcheck_method, heatcheck_gate):
    scores = heatcheck_maps.per_image(heatcheck_method, energy_pointing_game)
    heatcheck_gate.check("energy_on_object", float(scores.mean()), threshold=0.1,
                         per_image=scores, ids=heatcheck_maps.ids)
'''

SMALL = ["--hc-profile", "smoke", "--hc-methods", "gradcam", "--hc-no-cache", "-p", "no:cacheprovider", "-q"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv holding only the wheel, an empty working folder)."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the checkout's files (tracked, and new ones git does not ignore):
    # setuptools' in-tree build/ folder would keep modules that have since moved.
    source = root / "source"
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist"), str(source)], check=True, timeout=600)
    wheel = next((root / "dist").glob("heatcheck-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    site = next((root / "venv" / "lib").glob("python3*/site-packages"))
    deps = [p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir()]
    (site / "zz_dependencies.pth").write_text("\n".join(str(p) for p in deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheel)], check=True, timeout=600)
    work = root / "work"
    work.mkdir()
    return python, work


def run(python: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(python), *args], cwd=work, capture_output=True, text=True, timeout=1200,
                          env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_the_wheel_is_what_runs(installed):
    python, work = installed
    done = run(python, work, "-c", "import heatcheck, heatcheck.suite, heatcheck.fixtures; "
                                   "print(heatcheck.__file__, heatcheck.__version__)")
    assert done.returncode == 0, done.stderr
    assert str(REPO) not in done.stdout
    assert "0.1.0" in done.stdout


def test_the_bench_audit_runs_from_an_empty_folder(installed):
    python, work = installed
    done = run(python, work, "-m", "heatcheck", "audit", "--hc-images", "bench:8",
               "--hc-report-dir", "bench-report", *SMALL)
    assert "heatcheck verdict:" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert (work / "bench-report" / "results.json").exists()
    assert (work / "bench-report" / "index.html").exists()
    assert "no threshold" not in done.stdout


def test_a_model_file_with_a_manifest(installed):
    python, work = installed
    folder = work / "data"
    folder.mkdir(exist_ok=True)
    done = run(python, work, "-c", (
        "from heatcheck.fixtures.bench import make_bench, CLASS_NAMES; import numpy as np; "
        "from PIL import Image; import shutil, importlib.resources as r; "
        "images, labels, masks, _ = make_bench(8, seed=3); rows = ['image,label,mask']\n"
        "for i in range(8):\n"
        "    Image.fromarray(images[i]).save(f'data/i{i}.png'); "
        "Image.fromarray(masks[i].astype(np.uint8) * 255).save(f'data/m{i}.png'); "
        "rows.append(f'i{i}.png,{CLASS_NAMES[labels[i]]},m{i}.png')\n"
        "open('data/manifest.csv', 'w').write('\\n'.join(rows) + '\\n')\n"
        "shutil.copy(r.files('heatcheck.fixtures') / 'bench_models' / 'clean.keras', 'model.keras')\n"
        "open('names.txt', 'w').write('\\n'.join(CLASS_NAMES) + '\\n')"))
    assert done.returncode == 0, done.stderr
    done = run(python, work, "-m", "pytest", "--pyargs", "heatcheck.suite", "--hc-model", "model.keras",
               "--hc-class-names", "names.txt", "--hc-images", "data/manifest.csv",
               "--hc-report-dir", "file-report", *SMALL)
    assert "heatcheck verdict:" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert '"spec": "model.keras"' in (work / "file-report" / "results.json").read_text()


def test_a_custom_audit_lands_in_the_verdict(installed):
    python, work = installed
    (work / "test_my_audit.py").write_text(CUSTOM_AUDIT)
    done = run(python, work, "-m", "pytest", "test_my_audit.py", "--hc-images", "bench:8",
               "--hc-report-dir", "custom-report", *SMALL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "energy_on_object" in (work / "custom-report" / "results.json").read_text()
