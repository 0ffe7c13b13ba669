"""The offline ImageNet backbone: real weights, wired right, readable without torch, safe to load."""

import pickle

import keras
import numpy as np
import pytest
from conftest import FIXTURES

from classifier.backbones import BackboneUnavailable, build_backbone, input_size
from classifier.backbones.efficientnet_lite import EfficientNetLite, weights_path
from classifier.backbones.torch_pickle import load_state_dict
from classifier.images import decode


@pytest.fixture(scope="module")
def lite0_top():
    return EfficientNetLite("efficientnet_lite0", include_top=True)


def test_reader_gives_the_checkpoint_arrays():
    state = load_state_dict(weights_path("efficientnet_lite0"))
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    # Stored non-contiguously in the file (strides (1, 32, 288, 96)): a reader that ignores strides scrambles it.
    assert state["_conv_stem.weight"].flags["C_CONTIGUOUS"]
    assert 0.05 < np.abs(state["_conv_stem.weight"]).mean() < 5


def test_reader_refuses_code_in_the_pickle(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, f)
        f.write(b"cos\nsystem\n(S'echo pwned'\ntR.")  # os.system('echo pwned')
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_state_dict(evil)


def test_logits_match_pytorch_reference(lite0_top):
    ref = np.load(FIXTURES / "lite0_reference_logits.npz")
    pixels = np.stack([decode(FIXTURES / "reference" / str(n), 224) for n in ref["names"]])
    logits = np.asarray(lite0_top(pixels, training=False))
    assert logits.shape == (5, 1000)
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, rtol=0)


def test_chelsea_is_a_domestic_cat(lite0_top):
    logits = np.asarray(lite0_top(decode(FIXTURES / "chelsea.png", 224)[None], training=False))[0]
    assert 281 <= logits.argmax() <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_architecture_shape_and_size():
    model = build_backbone("efficientnet_lite0")
    assert model.output_shape == (None, 7, 7, 1280)
    assert 3.3e6 < model.count_params() < 3.5e6
    assert len({layer.name[:7] for layer in model.layers if layer.name.startswith("block")}) == 16  # MBConv blocks
    layer_types = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in layer_types and "ReLU" in layer_types
    assert input_size("efficientnet_lite0") == 224 and input_size("efficientnetv2b0") == 224


def test_saved_backbone_loads_in_safe_mode(tmp_path):
    model = build_backbone("efficientnet_lite0")
    model.save(tmp_path / "b.keras")
    again = keras.saving.load_model(tmp_path / "b.keras", compile=False, safe_mode=True)
    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(again(x), model(x), atol=1e-5)


def test_random_init_differs_from_imagenet():
    a = build_backbone("efficientnet_lite0", weights=None).get_layer("stem_conv").get_weights()[0]
    b = build_backbone("efficientnet_lite0").get_layer("stem_conv").get_weights()[0]
    assert a.shape == b.shape and not np.allclose(a, b)


def test_efficientnetv2b0_without_weights_builds_and_bad_weights_file_explains(tmp_path):
    assert build_backbone("efficientnetv2b0", weights=None).output_shape == (None, 7, 7, 1280)
    bogus = tmp_path / "efficientnetv2-b0_notop.h5"
    bogus.write_bytes(b"not weights")
    with pytest.raises(BackboneUnavailable, match="EFFICIENTNETV2B0_WEIGHTS|efficientnet_lite0"):
        build_backbone("efficientnetv2b0", weights_file=str(bogus))


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_backbone("resnet")


def test_lite2_is_real_too():
    model = EfficientNetLite("efficientnet_lite2", include_top=True)
    assert model.input_shape == (None, 260, 260, 3) and 6.0e6 < model.count_params() < 6.3e6
    logits = np.asarray(model(decode(FIXTURES / "chelsea.png", 260)[None], training=False))[0]
    assert 281 <= logits.argmax() <= 285
