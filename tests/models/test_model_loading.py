"""Model loading: every spec kind, ImageNet weights from the Keras cache, and the one-line refusals.

Nothing here downloads: ImageNet weight files are written into a Keras cache folder the test
makes itself, from a model built with ``weights=None``, and Keras's download function is
replaced by one that fails the test if it is called.
"""

import json
import uuid
import warnings

import h5py
import keras
import numpy as np
import pytest

from heatcheck import models
from heatcheck.explain.compiled import CompiledEngine
from heatcheck.explain.provider import MapProvider
from heatcheck.models import ModelError, applications, class_names, preprocess, surgery
from heatcheck.settings import Settings


def _one_line(exc_info: pytest.ExceptionInfo) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


def tiny(head: str = "softmax", name: str = "tiny") -> keras.Model:
    """A 16×16 conv classifier with three classes; ``head``: softmax, linear or layer (Softmax layer)."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if head == "layer":
        out = keras.layers.Softmax(name="probs")(keras.layers.Dense(3, name="scores")(x))
    else:
        out = keras.layers.Dense(3, activation=None if head == "linear" else "softmax", name="probs")(x)
    return keras.Model(inp, out, name=name)


def pixels(n: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def write_module(directory, source: str) -> str:
    """A uniquely named module in ``directory`` (imported from the current directory)."""
    name = f"hc_test_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(source)
    return name


# --------------------------------------------------------------------------- class names


def test_imagenet_class_names_are_the_1000_in_index_order():
    names = class_names.imagenet()
    assert len(names) == 1000
    assert len(set(names)) == 1000
    assert names[281] == "tabby"
    assert (names[285], names[277], names[330]) == ("Egyptian cat", "red fox", "wood rabbit")
    assert (names[673], names[674], names[675]) == ("mouse", "mousetrap", "moving van")
    assert (names[0], names[999]) == ("tench", "toilet tissue")


def test_class_names_files_good_and_bad(tmp_path):
    model_path = tmp_path / "m.keras"
    tiny().save(model_path)
    as_json = tmp_path / "names.json"
    as_json.write_text(json.dumps(["cat", "dog", "fox"]))
    as_text = tmp_path / "names.txt"
    as_text.write_text("cat\ndog\n\nfox\n")
    keras_style = tmp_path / "index.json"
    keras_style.write_text(json.dumps({"1": ["n2", "dog"], "0": ["n1", "cat"], "2": ["n3", "fox"]}))
    for path in (as_json, as_text, keras_style):
        audit = models.load_spec(str(model_path), class_names_file=str(path))
        assert audit.class_names == ("cat", "dog", "fox")
        assert audit.class_name(2) == "fox"
        assert audit.class_name(7) == "7"
    as_json.write_text(json.dumps(["cat", "dog"]))
    with pytest.raises(ModelError, match="2 names, but the model has 3 classes") as exc_info:
        models.load_spec(str(model_path), class_names_file=str(as_json))
    _one_line(exc_info)
    with pytest.raises(ModelError, match="not found"):
        models.load_spec(str(model_path), class_names_file=str(tmp_path / "missing.txt"))


# --------------------------------------------------------------------------- keras.applications


def test_registry_names_preprocessing_and_sizes():
    expected = {"vgg16": ("caffe", 224), "vgg19": ("caffe", 224), "resnet50": ("caffe", 224),
                "mobilenet_v2": ("tf", 224), "inception_v3": ("tf", 299), "densenet121": ("torch", 224),
                "efficientnetb0": ("raw", 224)}
    for name, (prep, size) in expected.items():
        app = applications.lookup(name)
        assert app is not None, name
        assert (app.preprocess, app.size) == (prep, size), name
        assert app.weights_file.endswith(".h5")
        preprocess.get(app.preprocess)
    mobilenet = applications.lookup("mobilenet_v2")
    assert mobilenet is not None
    assert applications.lookup("MobileNetV2") is mobilenet
    assert applications.lookup("mobilenet-v2") is mobilenet
    assert applications.lookup("not_a_net") is None


@pytest.fixture(scope="module")
def mobilenet():
    """MobileNetV2 at its ImageNet size, random weights (≈14 MB of weights)."""
    keras.utils.set_random_seed(3)
    return keras.applications.MobileNetV2(weights=None)


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt of keras.applications to fetch a file fails the test."""
    from keras.src.utils import file_utils

    def refuse(*args, **kwargs):
        pytest.fail(f"tried to download {args[:1]}")

    monkeypatch.setattr(file_utils, "get_file", refuse)


def _same_outputs(audit, original, size=224):
    x = preprocess.get(audit.preprocess)(pixels(2, size, seed=1))
    np.testing.assert_allclose(np.asarray(audit.model(x)), np.asarray(original(x)), atol=1e-6)


def test_application_with_a_weights_file(tmp_path, mobilenet, no_download):
    path = tmp_path / "mobilenet_v2.weights.h5"
    mobilenet.save_weights(path)
    audit = models.load_spec("mobilenet_v2", weights=str(path))
    assert (audit.input_shape, audit.num_classes, audit.preprocess) == ((224, 224, 3), 1000, "tf")
    assert audit.class_name(675) == "moving van"
    assert audit.conv_layer == "Conv_1"
    assert audit.sha256 == models.file_sha256(path)
    _same_outputs(audit, mobilenet)


def _write_legacy_h5(model, path):
    """Weights in the legacy HDF5 layout of the files keras.applications caches."""
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_imagenet_weights_come_from_the_keras_cache(tmp_path, monkeypatch, mobilenet, no_download):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    app = applications.lookup("mobilenet_v2")
    _write_legacy_h5(mobilenet, tmp_path / "models" / app.weights_file)
    audit = models.load_spec("MobileNetV2", weights="imagenet")
    _same_outputs(audit, mobilenet)


def test_imagenet_weights_missing_from_the_cache_names_file_and_folder(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ModelError) as exc_info:
        models.load_spec("vgg16", weights="imagenet")
    message = _one_line(exc_info)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message
    assert str(tmp_path / "models") in message
    assert "--hc-allow-download" in message


def test_allow_download_asks_keras_for_imagenet_weights(tmp_path, monkeypatch, mobilenet):
    from keras.src.utils import file_utils

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    fetched = tmp_path / "fetched" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
    _write_legacy_h5(mobilenet, fetched)
    asked = []
    monkeypatch.setattr(file_utils, "get_file", lambda name, *a, **k: asked.append(name) or str(fetched))
    audit = models.load_spec("mobilenet_v2", weights="imagenet", allow_download=True)
    assert asked == [fetched.name]
    _same_outputs(audit, mobilenet)

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network\nsecond line\nthird")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(ModelError, match="download of .* failed") as exc_info:
        models.load_spec("mobilenet_v2", weights="imagenet", allow_download=True)
    _one_line(exc_info)


def test_weights_for_another_architecture_are_refused(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    tiny().save_weights(path)
    with pytest.raises(ModelError, match="does not fit mobilenet_v2") as exc_info:
        models.load_spec("mobilenet_v2", weights=str(path))
    assert _one_line(exc_info).startswith(f"weights file {path} does not fit mobilenet_v2: ")


def test_application_without_weights_asks_for_them_and_none_is_seeded():
    with pytest.raises(ModelError, match="--hc-weights") as exc_info:
        models.load_spec("vgg16")
    _one_line(exc_info)
    first = models.load_spec("mobilenet_v2", weights="none", input_shape=(32, 32, 3))
    second = models.load_spec("mobilenet_v2", weights="none", input_shape=(32, 32, 3))
    assert first.sha256 == second.sha256
    assert first.input_shape == (32, 32, 3)
    with pytest.raises(ModelError, match="no such file"):
        models.load_spec("mobilenet_v2", weights="missing.weights.h5")


def test_efficientnet_takes_raw_pixels_and_exposes_its_last_conv():
    audit = models.load_spec("efficientnetb0", weights="none", input_shape=(32, 32, 3))
    assert audit.preprocess == "raw"
    assert audit.conv_layer == "top_conv"


# --------------------------------------------------------------------------- model files


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_file_round_trip(tmp_path, suffix):
    model = tiny()
    path = tmp_path / f"m{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras calls .h5 legacy; that is what is tested here
        model.save(path)
    audit = models.load_spec(str(path))
    assert (audit.conv_layer, audit.num_classes, audit.preprocess) == ("conv", 3, "raw")
    assert audit.extra["source"] == "file"
    assert audit.sha256 == models.file_sha256(path)
    x = pixels()
    np.testing.assert_allclose(np.asarray(audit.model(x)), np.asarray(model(x)), atol=1e-6)
    assert audit.logits_model.get_layer("probs").activation.__name__ == "linear"
    assert audit.model.get_layer("probs").activation.__name__ == "softmax"


def test_corrupt_missing_and_unknown_specs_give_one_line(tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip file")
    for spec, pattern in ((str(bad), "cannot load model"), (str(tmp_path / "gone.h5"), "not found"),
                          ("no_such_thing", "keras.applications name"),
                          (str(tmp_path), "no saved_model.pb")):
        with pytest.raises(ModelError, match=pattern) as exc_info:
            models.load_spec(spec)
        _one_line(exc_info)
    weights = tmp_path / "w.weights.h5"
    tiny().save_weights(weights)
    with pytest.raises(ModelError, match="a weights file, not a model"):
        models.load_spec(str(weights))


def test_weights_file_into_a_model_file(tmp_path):
    path = tmp_path / "m.keras"
    tiny().save(path)
    trained = tiny()
    trained.set_weights([w + 1.0 for w in trained.get_weights()])
    weights = tmp_path / "trained.weights.h5"
    trained.save_weights(weights)
    audit = models.load_spec(str(path), weights=str(weights))
    np.testing.assert_allclose(np.asarray(audit.model(pixels())), np.asarray(trained(pixels())), atol=1e-6)
    with pytest.raises(ModelError, match="applies to keras.applications names"):
        models.load_spec(str(path), weights="imagenet")


def test_savedmodel_folder(tmp_path):
    model = tiny()
    folder = tmp_path / "exported"
    model.export(folder, verbose=False)
    with pytest.raises(ModelError, match="--hc-unsafe-model") as exc_info:
        models.load_spec(str(folder))
    _one_line(exc_info)
    audit = models.load_spec(str(folder), safe_mode=False)
    assert audit.extra["source"] == "saved_model"
    assert audit.conv_layer is None
    assert "opaque" in audit.extra["conv_layer_reason"]
    x = pixels()
    np.testing.assert_allclose(np.asarray(audit.model(x)), np.asarray(model(x)), atol=1e-5)
    # Gradients flow through the SavedModel: Saliency works, Grad-CAM is skipped (no conv layer).
    engine = CompiledEngine(audit.logits_model, audit.conv_layer, audit.device)
    saliency = engine.explain("saliency", x, np.array([0, 2]), normalise=False)
    assert saliency.shape == (2, 16, 16)
    assert np.abs(saliency).max() > 0


def test_lambda_layer_refused_in_safe_mode_accepted_without(tmp_path):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(inp)
    model = keras.Model(inp, tiny()(x))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ModelError, match="--hc-unsafe-model") as exc_info:
        models.load_spec(str(path))
    _one_line(exc_info)
    audit = models.load_spec(str(path), safe_mode=False)
    assert audit.conv_layer == "conv"
    np.testing.assert_allclose(np.asarray(audit.model(pixels())), np.asarray(model(pixels())), atol=1e-6)


# --------------------------------------------------------------------------- module:function


def test_factory_and_preprocess_functions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = write_module(tmp_path, (
        "import keras\n\n"
        "def build():\n"
        "    inp = keras.Input((16, 16, 3))\n"
        "    x = keras.layers.Conv2D(2, 3, name='c')(inp)\n"
        "    return keras.Model(inp, keras.layers.Dense(5)(keras.layers.Flatten()(x)))\n\n"
        "def prep(pixels):\n"
        "    return pixels / 255.0\n\n"
        "def not_a_model():\n"
        "    return 42\n"))
    audit = models.load_spec(f"{name}:build", preprocess=f"{name}:prep")
    assert (audit.conv_layer, audit.num_classes, audit.extra["source"]) == ("c", 5, "factory")
    assert audit.preprocess == f"{name}:prep"
    x = preprocess.get(audit.preprocess)(np.full((1, 16, 16, 3), 255, np.uint8))
    assert x.dtype == np.float32
    assert x.max() == 1.0
    for spec, pattern in ((f"{name}:missing", "has no function missing"),
                          (f"{name}:not_a_model", "returned int, not a keras Model"),
                          ("hc_no_such_module:build", "cannot import hc_no_such_module")):
        with pytest.raises(ModelError, match=pattern) as exc_info:
            models.load_spec(spec)
        _one_line(exc_info)
    with pytest.raises(ModelError, match="--hc-preprocess nope: unknown"):
        models.load_spec(f"{name}:build", preprocess="nope")


def test_subclassed_model_from_a_factory_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = write_module(tmp_path, (
        "import keras\n\n"
        "class Net(keras.Model):\n"
        "    def call(self, x):\n"
        "        return x\n\n"
        "def build():\n"
        "    return Net()\n"))
    with pytest.raises(ModelError, match="subclassed"):
        models.load_spec(f"{name}:build")


# --------------------------------------------------------------------------- models that don't fit


def test_multi_output_needs_output(tmp_path):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(inp))
    model = keras.Model(inp, [keras.layers.Dense(3, activation="softmax", name="species")(x),
                              keras.layers.Dense(2, activation="sigmoid", name="age")(x)])
    with pytest.raises(ModelError, match="2 outputs .*0: species.*1: age.*--hc-output") as exc_info:
        models.wrap(model, "two-heads", "sha")
    _one_line(exc_info)
    by_name = models.wrap(model, "two-heads", "sha", output="age")
    by_index = models.wrap(model, "two-heads", "sha", output="1")
    assert by_name.num_classes == by_index.num_classes == 2
    assert by_name.conv_layer == "conv"
    # Each output's maps are cached under their own key, not under the file's alone.
    species = models.wrap(model, "two-heads", "sha", output="species")
    keys = {MapProvider(a, Settings()).model_key for a in (species, by_index)}
    assert len(keys) == 2
    assert len(model.outputs) == 2  # the user's model keeps both heads
    np.testing.assert_allclose(np.asarray(by_name.model(pixels())), np.asarray(model(pixels())[1]), atol=1e-6)
    with pytest.raises(ModelError, match="--hc-output size: no such output"):
        models.wrap(model, "two-heads", "sha", output="size")


@pytest.mark.parametrize("head", ["linear", "layer"])
def test_logits_heads(head):
    model = tiny(head)
    audit = models.wrap(model, "tiny", "sha")
    x = pixels()
    logits = np.asarray(audit.logits_model(x))
    if head == "linear":  # already logits: nothing to change
        np.testing.assert_allclose(logits, np.asarray(model(x)), atol=1e-6)
    else:  # a separate Softmax layer is cut off
        np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits)), np.asarray(model(x)), atol=1e-6)
        assert not np.allclose(logits.sum(axis=1), 1.0)


def test_model_without_conv_layer_has_none_with_a_reason():
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)))
    audit = models.wrap(model, "dense-only", "sha")
    assert audit.conv_layer is None
    assert "no channels-last Conv2D" in audit.extra["conv_layer_reason"]
    saliency = CompiledEngine(audit.logits_model, None, audit.device).explain(
        "saliency", pixels(), np.array([0, 1]), normalise=True)
    assert saliency.shape == (2, 16, 16)


def test_channels_first_is_refused_with_the_fix():
    inp = keras.Input((3, 16, 16))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(inp)))
    with pytest.raises(ModelError, match="channels-first") as exc_info:
        models.wrap(model, "nchw", "sha")
    assert "Permute((3, 1, 2))" in _one_line(exc_info)


@pytest.fixture(scope="module")
def nested_models():
    """A MobileNetV2 base inside a Sequential, and inside a functional model with a name clash."""
    keras.utils.set_random_seed(5)
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3),
                                          alpha=0.35)
    sequential = keras.Sequential([keras.Input((64, 64, 3)), base, keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Dense(4, activation="softmax")], name="seq")
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inp)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="out_relu")(x)  # clashes with an inner layer's name
    functional = keras.Model(inp, keras.layers.Dense(4, name="logits")(x), name="func")
    return sequential, functional


@pytest.mark.parametrize("which", [0, 1])
def test_nested_model_is_flattened_so_grad_cam_reaches_the_inner_conv(nested_models, which):
    model = nested_models[which]
    audit = models.wrap(model, model.name, "sha")
    assert audit.conv_layer == "Conv_1"
    assert audit.extra["flattened"] == ["mobilenetv2_0.35_64"]
    assert audit.logits_model.get_layer("Conv_1").output.shape[1:3] == (2, 2)
    x = pixels(3, 64, seed=2)
    probs = np.asarray(audit.model(x))
    logits = np.asarray(audit.logits_model(x))
    expected = logits if which == 1 else np.asarray(keras.ops.softmax(logits))
    np.testing.assert_allclose(expected, probs, atol=1e-5)
    engine = CompiledEngine(audit.logits_model, audit.conv_layer, audit.device)
    maps = engine.explain_many(("saliency", "gradcam", "gradcampp"), x, np.array([0, 1, 3]), normalise=True)
    for method, values in maps.items():
        assert values.shape == (3, 64, 64), method
        assert np.isfinite(values).all(), method
    assert audit.model is model  # the user's model, untouched: still nested, softmax kept
    assert model.layers[-1].activation.__name__ == ("softmax" if which == 0 else "linear")


def test_layer_option_on_a_nested_model(nested_models):
    model = nested_models[0]
    audit = models.wrap(model, "seq", "sha", layer="block_16_project")
    assert audit.conv_layer == "block_16_project"
    with pytest.raises(ModelError, match="--hc-layer nope: no such layer"):
        models.wrap(model, "seq", "sha", layer="nope")
    with pytest.raises(ModelError, match="is not spatial"):
        models.wrap(model, "seq", "sha", layer=model.layers[1].name)


def test_nested_model_that_cannot_be_flattened_has_no_conv_layer_and_says_why(nested_models, monkeypatch):
    def refuse(model):
        raise TypeError("custom layer\nwith details")

    monkeypatch.setattr(surgery, "flatten", refuse)
    model = nested_models[0]
    audit = models.wrap(model, "seq", "sha")
    assert audit.conv_layer is None
    assert "could not be flattened (TypeError: custom layer with details)" in audit.extra["conv_layer_reason"]
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(audit.logits_model(pixels(1, 64)))),
                               np.asarray(model(pixels(1, 64))), atol=1e-5)
    with pytest.raises(ModelError, match="--hc-layer Conv_1: nested model"):
        models.wrap(model, "seq", "sha", layer="Conv_1")
