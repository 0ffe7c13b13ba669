"""Prediction speed on this machine: our path against the original project's, side by side in one run.

    python benchmarks/predict_speed.py [--data ../shared/data/animals] [--n 200]

Measures, on a fixed sample of the shared photos (median ~260 px) and on generated 12 MP JPEGs, three paths:
LiteRT (ours, served: the model converted to .tflite), Keras (ours: the same model through a traced tf.function)
and the original design (EfficientNetV2B0 from keras.applications with weights=None + the same head, fed one image
through ImageDataGenerator.flow_from_dataframe + model.predict, as its predict.py did):
- single-image latency (decode + predict, p50/p90);
- folder throughput (images/s, decode included);
- app start to first answer (python app.py, then one /classify call through gradio_client) and the app's peak
  memory after it, with SERVING_ENGINE=litert and =keras (the .tflite already cached, as after a first start);
- a fresh start (what every Space restart is: empty ``DATA_DIR``, empty model cache) to the first answer against
  ``python -c "import tensorflow, gradio"`` alone, in the same run (``--fresh-start`` alone; goal: at most 0.5x);
- where the model looked: a Grad-CAM heatmap over the photo (decode, heatmap, overlay: what the Classify and Review
  tabs show) against a plain prediction through the served LiteRT path, p50 per photo (``--heatmap`` alone);
- /classify over HTTP (gradio_client: upload, join, answer) through the studio against a bare Gradio app with the
  same decode and model, alternating rounds (``--http`` alone; goal: at most 1.3x);
- the downloads (classifier/export.py): the float16 TFLite file through LiteRT and the ONNX file through
  onnxruntime against Keras, one photo (decode + predict) p50/p90 (``--exports`` alone);
- the review's features (each photo and its mirror image, what the curation computes): the served LiteRT model
  against Keras, each in a fresh process, import and model load included, seconds and peak memory
  (``--features`` alone).
"""

import argparse
import functools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from classifier.images import is_image_file  # noqa: E402
from classifier.model import build_head  # noqa: E402
from classifier.predictor import Classifier  # noqa: E402


def sample_photos(data, n, seed=0):
    files = sorted(p for p in Path(data).rglob("*") if p.is_file() and is_image_file(p))
    return [str(p) for p in random.Random(seed).sample(files, min(n, len(files)))]


def make_12mp(photos, out_dir, n=12):
    paths = []
    for i, src in enumerate(photos[:n]):
        path = Path(out_dir) / f"big_{i}.jpg"
        Image.open(src).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(path, quality=90)
        paths.append(str(path))
    return paths


def original_model():
    """The original design: EfficientNetV2B0 (random weights, offline) + the same dense head."""
    base = keras.applications.EfficientNetV2B0(include_top=False, weights=None, input_shape=(224, 224, 3))
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    return keras.Model(inputs, build_head(1280)(x))


def original_generator(paths, batch_size):
    gen = tf.keras.preprocessing.image.ImageDataGenerator()  # removed from keras 3, kept in tf.keras
    return gen.flow_from_dataframe(pd.DataFrame({"filename": paths}), x_col="filename", y_col=None,
                                   class_mode=None, target_size=(224, 224), batch_size=batch_size, shuffle=False)


def latency(fn, paths, repeats=1):
    fn(paths[0])  # warm-up
    times = []
    for _ in range(repeats):
        for p in paths:
            t = time.perf_counter()
            fn(p)
            times.append((time.perf_counter() - t) * 1000)
    return np.percentile(times, 50), np.percentile(times, 90)


def throughput(fn, paths):
    fn(paths[:8])  # warm-up
    t = time.perf_counter()
    fn(paths)
    return len(paths) / (time.perf_counter() - t)


def app_start_to_first_answer(photo, engine, cache):
    """Seconds from ``python app.py`` to the first /classify answer, and the app's peak memory (MB) then."""
    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "DATA_DIR": tempfile.mkdtemp(), "SERVING_ENGINE": engine,
           "MODEL_CACHE": cache}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(0.2)
        client.predict(handle_file(photo), api_name="/classify")
        seconds = time.perf_counter() - t
        peak = next(int(line.split()[1]) for line in open(f"/proc/{proc.pid}/status") if line.startswith("VmHWM"))
        return seconds, peak / 1024
    finally:
        proc.terminate()
        proc.wait()


BARE_APP = """
import sys
sys.path.insert(0, {root!r})
import gradio as gr
from classifier.classes import display_name
from classifier.predictor import Classifier

clf = Classifier.load(None, "litert", {cache!r})

def classify(path):
    return {{display_name(c): float(p) for c, p in clf.top_k(clf.predict(path), 5)}}

gr.Interface(classify, gr.Image(type="filepath"), gr.Label(num_top_classes=10), api_name="classify").queue().launch(
    server_port={port})
"""


def serve(command, env=None):
    """A server started by ``command`` (a list; ``{port}`` filled in) on a free port: ``(process, url)``, once it
    answers."""
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([part.replace("{port}", str(port)) for part in command], cwd=ROOT, env={**os.environ,
                            "PORT": str(port), **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{command} did not start")


def http_cost(photo, cache, rounds=3, n=40):
    """Median ms of one /classify over HTTP (gradio_client: upload, join, answer) through the studio (its door and
    every check) and through a bare Gradio app with the same decode and LiteRT model, in alternating rounds so both
    see the same machine. Returns ``{app: [p50 per round]}``."""
    from gradio_client import Client, handle_file

    apps = {"studio (app.py)": [sys.executable, "app.py"],
            "bare Gradio app": [sys.executable, "-c", BARE_APP.format(root=str(ROOT), cache=cache, port="{port}")]}
    env = {"DATA_DIR": tempfile.mkdtemp(), "MODEL_CACHE": cache}
    servers = {name: serve(command, env) for name, command in apps.items()}
    try:
        clients = {name: Client(url, verbose=False) for name, (_, url) in servers.items()}
        times = {name: [] for name in apps}
        for _ in range(rounds):
            for name, client in clients.items():
                for _ in range(5):  # warm: the first calls pay for imports and caches
                    client.predict(handle_file(photo), api_name="/classify")
                one = []
                for _ in range(n):
                    t = time.perf_counter()
                    client.predict(handle_file(photo), api_name="/classify")
                    one.append(time.perf_counter() - t)
                times[name].append(1000 * float(np.median(one)))
        return times
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()


def print_http_cost(times):
    studio, bare = times.values()
    print("\n| /classify over HTTP (gradio_client) | p50 ms per round |\n|---|---|")
    for name, p50s in times.items():
        print(f"| {name} | {' / '.join(f'{t:.0f}' for t in p50s)} |")
    ratios = [s / b for s, b in zip(studio, bare)]
    print(f"studio against the bare app: {' / '.join(f'{r:.2f}x' for r in ratios)} (goal <= 1.3x)")


def fresh_start(photo, repeats=3):
    """Median seconds of ``import tensorflow, gradio`` in a new process and of a fresh app start (empty ``DATA_DIR``
    and model cache) to its first answer, alternated so both see the same machine."""
    imports, starts = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import tensorflow, gradio"], check=True, capture_output=True)
        imports.append(time.perf_counter() - t)
        starts.append(app_start_to_first_answer(photo, "litert", tempfile.mkdtemp())[0])
    return float(np.median(imports)), float(np.median(starts))


def print_fresh_start(imports, start):
    print(f"\nfresh start (empty DATA_DIR and model cache) to the first answer: {start:.1f} s; "
          f"`import tensorflow, gradio` alone: {imports:.1f} s; ratio {start / imports:.2f}x (goal <= 0.5x)")


def mirror_cost(photos, cache, rounds=3):
    """One photo through LiteRT, decode included, with and without mirror test-time augmentation (off when the app
    serves: it runs the network twice), alternated in rounds: ``{name: (p50, p90) ms}``."""
    clf = Classifier.load(None, "litert", cache)
    times = {"plain": [], "with mirror": []}
    for _ in range(rounds):
        for name, tta in (("plain", False), ("with mirror", True)):
            times[name].append(latency(functools.partial(clf.predict, tta=tta), photos[:60]))
    return {name: tuple(np.median(t, axis=0)) for name, t in times.items()}


def print_mirror_cost(costs):
    (p50, p90), (m50, m90) = costs["plain"], costs["with mirror"]
    print(f"one photo through LiteRT, decode included: plain {p50:.1f} / {p90:.1f} ms (p50 / p90), with mirror "
          f"test-time augmentation {m50:.1f} / {m90:.1f} ms ({m50 / p50:.2f}x at p50)")


def heatmap_cost(photos, cache):
    """p50/p90 ms of a plain prediction (LiteRT, served) and of a heatmap over the photo, on the same photos: from the
    served model's own pass (what the app draws for the default's linear head) and through Keras (a dense head)."""
    from classifier.heatmap import Explainer, explainer

    served = Classifier.load(None, "litert", cache)
    return {"prediction (LiteRT)": latency(served.predict, photos[:60], repeats=2),
            "Grad-CAM over the photo (served, LiteRT)": latency(explainer(served).explain, photos[:60], repeats=2),
            "Grad-CAM over the photo (Keras)": latency(Explainer.load().explain, photos[:60], repeats=2)}


def features_cost(photos, cache):
    """``{engine: (seconds, peak MB)}`` for the features of ``photos`` and their mirror images, each engine in a
    fresh process, its imports and the model's load included (the Keras row is what the review's curation paid
    before it read the served model's features)."""
    Classifier.load(None, "litert", cache)  # the .tflite exists already, as in the app
    out = {}
    for engine in ("litert", "keras"):
        code = ("import resource, sys, time; t = time.time(); from classifier.predictor import Classifier; "
                f"c = Classifier.load(None, {engine!r}, {str(cache)!r}); c.features(sys.argv[1:], mirror=True); "
                "print(time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
        done = subprocess.run([sys.executable, "-c", code, *map(str, photos)], cwd=ROOT, capture_output=True,
                              text=True, check=True)
        out[engine] = tuple(float(v) for v in done.stdout.split()[-2:])
    return out


def print_features_cost(costs):
    (lite_s, lite_mb), (keras_s, keras_mb) = costs["litert"], costs["keras"]
    print(f"features of the sample and its mirror images, fresh process: LiteRT {lite_s:.1f} s, {lite_mb:.0f} MB peak; "
          f"Keras {keras_s:.1f} s, {keras_mb:.0f} MB peak ({lite_s / keras_s:.2f}x the time)")


def export_speed(photos, cache):
    """p50/p90 ms per photo (decode + predict) of the Keras model and of its two downloads."""
    from onnxruntime import InferenceSession

    from classifier.export import export
    from classifier.images import decode
    from classifier.predictor import LiteEngine

    files = export(cache_dir=cache)
    keras_clf = Classifier.load(None, "keras")
    lite16 = LiteEngine(files["tflite"])
    onnx = InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    name = onnx.get_inputs()[0].name
    size = keras_clf.size
    return {"Keras": latency(keras_clf.predict, photos[:60], repeats=2),
            "TFLite float16 (LiteRT)": latency(lambda p: lite16(decode(p, size)[None]), photos[:60], repeats=2),
            "ONNX (onnxruntime)": latency(lambda p: onnx.run(None, {name: decode(p, size)[None]}), photos[:60],
                                          repeats=2)}


def print_export_speed(speeds):
    (keras_p50, _), *_ = speeds.values()
    print("\n| one photo, decode + predict | p50 / p90 ms | p50 against Keras |\n|---|---|---|")
    for name, (p50, p90) in speeds.items():
        print(f"| {name} | {p50:.1f} / {p90:.1f} | {p50 / keras_p50:.2f}x |")


def print_heatmap_cost(costs):
    (plain, _), *_ = costs.values()
    print("\n| one photo | p50 / p90 ms | p50 against a plain prediction |\n|---|---|---|")
    for name, (p50, p90) in costs.items():
        print(f"| {name} | {p50:.1f} / {p90:.1f} | {p50 / plain:.2f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--n", type=int, default=200, help="photos in the sample (default: %(default)s)")
    ap.add_argument("--heatmap", action="store_true", help="measure only the heatmap against a plain prediction")
    ap.add_argument("--exports", action="store_true", help="measure only the TFLite and ONNX downloads")
    ap.add_argument("--fresh-start", action="store_true", help="measure only a fresh start against the imports")
    ap.add_argument("--mirror", action="store_true", help="measure only mirror test-time augmentation's cost")
    ap.add_argument("--http", action="store_true", help="measure only /classify over HTTP against a bare Gradio app")
    ap.add_argument("--features", action="store_true", help="measure only the review's features, LiteRT and Keras")
    args = ap.parse_args()
    photos = sample_photos(args.data, args.n)
    if args.http:
        return print_http_cost(http_cost(photos[0], tempfile.mkdtemp()))
    if args.features:
        return print_features_cost(features_cost(photos, tempfile.mkdtemp()))
    if args.fresh_start:
        return print_fresh_start(*fresh_start(photos[0]))
    if args.mirror:
        return print_mirror_cost(mirror_cost(photos, tempfile.mkdtemp()))
    if args.heatmap:
        return print_heatmap_cost(heatmap_cost(photos, tempfile.mkdtemp()))
    if args.exports:
        return print_export_speed(export_speed(photos, tempfile.mkdtemp()))
    sizes = [max(Image.open(p).size) for p in photos]
    cache = tempfile.mkdtemp()
    paths = {"LiteRT": Classifier.load(None, "litert", cache), "Keras": Classifier.load(None, "keras")}
    orig = original_model()

    def one(clf):
        return lambda p: clf.predict(p)

    def many(clf):
        return lambda ps: list(clf.predict_files(ps, batch_size=32))

    def orig_one(p):
        return orig.predict(original_generator([p], 1), verbose=0)

    def orig_many(ps):
        return orig.predict(original_generator(ps, 32), verbose=0)

    with tempfile.TemporaryDirectory() as tmp:
        big = make_12mp(photos, tmp)
        rows = []
        for name, images in ((f"shared photos (n={len(photos)}, median {np.median(sizes):.0f} px)", photos),
                             (f"12 MP JPEGs (n={len(big)})", big)):
            row = {"set": name}
            for path, clf in paths.items():
                row[path] = (*latency(one(clf), images[:60]), throughput(many(clf), images))
            row["original"] = (*latency(orig_one, images[:60]), throughput(orig_many, images))
            rows.append(row)
    starts = {engine: app_start_to_first_answer(photos[0], engine, cache) for engine in ("litert", "keras")}

    print(f"\nCPU cores: {os.cpu_count()}; TF {tf.__version__}; Keras {keras.__version__}\n")
    print("| image set | path | p50 / p90 ms | img/s | p50 vs Keras | img/s vs original |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for path in ("LiteRT", "Keras", "original"):
            p50, p90, tp = row[path]
            print(f"| {row['set']} | {path} | {p50:.1f} / {p90:.1f} | {tp:.1f} | {p50 / row['Keras'][0]:.2f}x | "
                  f"{tp / row['original'][2]:.1f}x |")
    (lite_s, lite_mb), (keras_s, keras_mb) = starts["litert"], starts["keras"]
    print(f"\napp start to first answer: LiteRT {lite_s:.1f} s, Keras {keras_s:.1f} s ({lite_s / keras_s:.2f}x); "
          f"peak memory after it: LiteRT {lite_mb:.0f} MB, Keras {keras_mb:.0f} MB")
    print_fresh_start(*fresh_start(photos[0]))
    print_mirror_cost(mirror_cost(photos, cache))
    print_heatmap_cost(heatmap_cost(photos, cache))
    print_features_cost(features_cost(photos, cache))
    print_export_speed(export_speed(photos, cache))


if __name__ == "__main__":
    main()
