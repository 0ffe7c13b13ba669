"""The one prediction path: :class:`Classifier` decodes, batches and asks an engine for probabilities.

Two engines run the same model:

- ``litert`` (default): the model converted once to ``.tflite`` (:func:`convert`, cached by the model file's hash)
  and run by the LiteRT interpreter (XNNPACK). About twice as fast per photo on a CPU, and TensorFlow is not
  imported at all once the ``.tflite`` exists, so the app starts sooner.
- ``keras``: the Keras model through a traced ``tf.function`` (BatchNorm folded). Used where LiteRT is missing,
  or when ``SERVING_ENGINE=keras``.

Both give the same probabilities to 1e-4 (tested); to 3e-3 for a model that brings its own float16 ``.tflite``,
as the default does. Both also give the pooled backbone features from the same pass (:meth:`Classifier.features`:
the review's ranking and copies). This module imports neither TensorFlow nor Keras at load time.
"""

import contextlib
import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .classes import CLASSES, NONE, TOP_K
from .images import ImageError, decode
from .modelfile import DEFAULT_MODEL, content_hash, default_cache, model_meta, read_calibration, shipped_tflite

ENGINES = ("litert", "keras")
# the "none of the 10" cut of a model that brings no calibrated one (Settings.low_confidence's default, LOW_CONFIDENCE)
LOW_CONFIDENCE = 0.5


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) probabilities: softmax(log(p) / T)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def answer(probs: np.ndarray, classes, threshold: float | None) -> str:
    """One probability row's answer: its top class, or "none of the 10" (:data:`NONE`) when the top probability is
    under ``threshold`` (None: never none)."""
    return answers(np.asarray(probs)[None], classes, threshold)[0]


def answers(probs: np.ndarray, classes, threshold: float | None) -> list[str]:
    """:func:`answer` of each row of ``probs`` (``(n, len(classes))``) at once: a queue of thousands ranks in
    milliseconds."""
    probs = np.asarray(probs).reshape(-1, len(classes))
    top = probs.argmax(1)
    names = np.asarray(classes, object)[top]
    if threshold is not None:
        names[probs[np.arange(len(top)), top] < threshold] = NONE
    return names.tolist()


def none_threshold(calibrated: float | None, fallback: float = LOW_CONFIDENCE) -> float:
    """A model's "none of the 10" cut: its ``calibrated`` threshold, else ``fallback`` (the app's LOW_CONFIDENCE).
    :attr:`Classifier.none_threshold` is this rule for a loaded model."""
    return fallback if calibrated is None else calibrated


def convert(model_path: str | Path | None, cache_dir: str | Path | None = None) -> Path:
    """The ``.tflite`` of a ``.keras``/``.npz`` model: the one it brings (:func:`~classifier.modelfile.shipped_tflite`,
    as the default does), else converted once and cached under ``cache_dir`` by the model file's content hash (a
    retrained run gets a new one). Converting imports TensorFlow; a brought or cached file does not."""
    model_path = Path(model_path or DEFAULT_MODEL)
    digest = content_hash(model_path)  # read once: a run's model.keras is tens of MB
    if (shipped := shipped_tflite(model_path, digest)).exists():
        return shipped
    out = Path(cache_dir or default_cache()) / f"{model_path.stem}-{digest}.tflite"
    if out.exists():
        return out
    import tensorflow as tf

    from .model import inference_model, load_model

    model, _ = load_model(model_path)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel's signature
        data = tf.lite.TFLiteConverter.from_keras_model(inference_model(model, features=True)).convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")  # another process may convert the same model at once
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


class LiteEngine:
    """A ``.tflite`` model in the LiteRT interpreter, one photo per call of the interpreter: on this CPU that is
    faster than a batch (211 against 174 photos/s for batches of 32). One photo at a time holds the interpreter (it
    is not thread-safe), so an answer waits for at most one photo of a background job. A model converted here gives
    its pooled features too, and a linear head its Grad-CAM maps (:meth:`run`); a ``.tflite`` made elsewhere with
    one output gives probabilities only."""

    name = "LiteRT"

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
        details = self._interpreter.get_input_details()[0]
        self.size = int(details["shape_signature"][1])
        named = {}  # by name: their order is not kept
        if len(self._interpreter.get_signature_list()) == 1:
            named = self._interpreter.get_signature_runner().get_output_details()
        self._outputs = {name: d["index"] for name, d in named.items()} if "probabilities" in named else \
            {"probabilities": self._interpreter.get_output_details()[0]["index"]}
        self.outputs = tuple(self._outputs)
        self._interpreter.resize_tensor_input(details["index"], [1, self.size, self.size, 3])
        self._interpreter.allocate_tensors()
        self._input = details["index"]
        self._lock = threading.Lock()

    def __call__(self, pixels):
        return self.run(pixels, ("probabilities",))["probabilities"]

    def run(self, pixels, outputs=None) -> dict:
        """``{output: (n, ...)}`` of a batch of pixels: ``outputs`` of :attr:`outputs` (default: all)."""
        names = outputs or self.outputs
        if not len(pixels):
            return {name: np.zeros((0, *self._interpreter.get_tensor(self._outputs[name]).shape[1:]), np.float32)
                    for name in names}
        out = {name: [] for name in names}
        for image in np.asarray(pixels, np.float32):
            with self._lock:
                self._interpreter.set_tensor(self._input, image[None])
                self._interpreter.invoke()
                for name in names:
                    out[name].append(self._interpreter.get_tensor(self._outputs[name])[0].copy())
        return {name: np.stack(rows) for name, rows in out.items()}


class KerasEngine:
    """A Keras classifier through a traced ``tf.function``: ``model.predict`` costs ~60 ms a call on this CPU."""

    name = "Keras"

    def __init__(self, model):
        import tensorflow as tf

        from .model import inference_model

        fast = inference_model(model, features=True)  # BatchNorm folded into the convolutions: ~1.5x the throughput
        self.outputs = tuple(fast.output)
        self.size = model.input_shape[1]
        self._forward = tf.function(lambda x: fast(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec((None, self.size, self.size, 3), tf.float32)])

    def __call__(self, pixels):
        return self.run(pixels)["probabilities"]

    def run(self, pixels, outputs=None) -> dict:
        """``{output: (n, ...)}`` of a batch of pixels (all of :attr:`outputs`, whatever ``outputs`` asks)."""
        return {name: value.numpy() for name, value in self._forward(np.asarray(pixels, np.float32)).items()}


def _lite_engine(path, cache_dir):
    """The LiteRT engine of a model; a cached .tflite that does not load (damaged on disk), or that an earlier
    version converted with probabilities only, is converted again (a model's own, shipped one is served as it is)."""
    tflite = convert(path, cache_dir)
    try:
        engine = LiteEngine(tflite)
        if "features" in engine.outputs or tflite == shipped_tflite(path):
            return engine
        why = "gives probabilities only (an earlier version's conversion)"
    except (ValueError, RuntimeError) as e:
        why = f"did not load ({e})"
    print(f"the cached {tflite.name} {why}; converting the model again", file=sys.stderr)
    tflite.unlink()
    return LiteEngine(convert(path, cache_dir))


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


class Classifier:
    """A loaded model with its one prediction path (decode, batch, softmax probabilities).

    >>> clf = Classifier.load()                      # the default model, through LiteRT
    >>> probs = clf.predict(["cat.jpg", pil_image])  # (2, 10) probabilities, rows in CLASSES order
    >>> clf.top_k(probs[0], 3)                       # [("cat", 0.97), ("dog", 0.02), ...]
    """

    def __init__(self, engine, meta=None, path=None, calibration=None, fallback: float = LOW_CONFIDENCE):
        self.engine, self.meta, self.path = engine, dict(meta or {}), path
        self.calibration = calibration or {}
        self.temperature = float(self.calibration.get("temperature", 1.0))
        self.threshold = self.calibration.get("threshold")  # calibrated "none of the 10" cut, if any
        self.fallback = fallback  # the cut where there is none (the app's LOW_CONFIDENCE)
        self.size = engine.size
        self.classes = tuple(self.meta.get("classes", CLASSES))

    @classmethod
    def load(cls, path: str | Path | None = None, engine: str | None = None,
             cache_dir: str | Path | None = None, fallback: float = LOW_CONFIDENCE) -> "Classifier":
        """Load a ``.keras``/``.npz`` model with its calibration, converted to ``.tflite`` for LiteRT (cached).

        ``engine``: ``"litert"`` or ``"keras"``; default ``SERVING_ENGINE`` from the environment, else LiteRT.
        Where LiteRT is not installed, Keras serves (and :attr:`engine_name` says so). ``fallback``: the "none of
        the 10" cut where the model brings no calibrated one (:attr:`none_threshold`).
        """
        path = Path(path or DEFAULT_MODEL)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} does not exist")
        engine = engine or os.environ.get("SERVING_ENGINE") or "litert"
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        calibration = read_calibration(path)
        if engine == "litert" and litert_available():
            return cls(_lite_engine(path, cache_dir), model_meta(path), str(path), calibration, fallback)
        if engine == "litert":
            print("LiteRT (ai-edge-litert) is not installed here: serving through Keras", file=sys.stderr)
        from .model import load_model

        model, meta = load_model(path)
        return cls(KerasEngine(model), meta, str(path), calibration, fallback)

    @classmethod
    def from_keras(cls, model, meta: dict | None = None, path: str | None = None) -> "Classifier":
        """A Keras model in memory (training, a feature extractor) through the Keras engine."""
        return cls(KerasEngine(model), meta, path)

    @property
    def none_threshold(self) -> float:
        """The model's answer rule: its "none of the 10" cut, the calibrated one, else :attr:`fallback`. Every
        answer the app gives goes by it (Classify, the tools, the review's ranking), unless a person picked
        another for the session (the Evaluate tab's curve)."""
        return none_threshold(self.threshold, self.fallback)

    @property
    def engine_name(self) -> str:
        return self.engine.name

    @property
    def name(self) -> str:
        return self.meta.get("name") or (Path(self.path).stem if self.path else "model")

    def predict(self, images, tta: bool = False) -> np.ndarray:
        """Probabilities for one image (PIL, path, bytes) -> ``(10,)``, or a list/array batch -> ``(n, 10)``.

        Raises :class:`~classifier.images.ImageError` if an image cannot be decoded.
        """
        single = not isinstance(images, (list, tuple, np.ndarray)) or (
            isinstance(images, np.ndarray) and images.ndim == 3)
        batch = [images] if single else images
        if not (isinstance(batch, np.ndarray) and batch.ndim == 4):
            batch = np.stack([decode(image, self.size) for image in batch]) if len(batch) else \
                np.zeros((0, self.size, self.size, 3), np.float32)
        probs = self.predict_pixels(batch, tta)
        return probs[0] if single else probs

    def predict_pixels(self, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities for an already decoded float32 batch ``(n, size, size, 3)`` of 0-255 pixels.

        ``tta`` averages the probabilities of each photo and its mirror image. A fitted temperature (see
        ``python -m evaluation calibrate``) is applied.
        """
        if len(pixels) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        probs = self.engine(pixels)
        if tta:
            probs = (probs + self.engine(np.ascontiguousarray(pixels[:, :, ::-1]))) / 2
        return probs if self.temperature == 1.0 else apply_temperature(probs, self.temperature)

    @property
    def has_features(self) -> bool:
        """Whether :meth:`features` can be asked (a ``.tflite`` made elsewhere may give probabilities only)."""
        return "features" in self.engine.outputs

    def features(self, paths, progress=None, batch_size: int = 32, mirror: bool = False):
        """Pooled backbone features and probabilities of many files, from one pass of the model (and one decode
        for a photo and its mirror image). Returns ``(features (n, d), probabilities (n, k), readable paths,
        [(path, message)] of the unreadable)``; with ``mirror``, each row is followed by the mirror image's
        (``(n, 2d)``, ``(n, 2k)``). The probabilities are the model's own, before any calibration temperature."""
        if not self.has_features:
            raise ValueError(f"{self.name}'s .tflite gives no features: load it with engine='keras'")
        k = len(self.classes)

        def run(pixels):
            views = [pixels, np.ascontiguousarray(pixels[:, :, ::-1])] if mirror else [pixels]
            outs = [self.engine.run(v, ("probabilities", "features")) for v in views]
            return np.concatenate([o["features"] for o in outs] + [o["probabilities"] for o in outs], 1)

        paths = [str(p) for p in paths]
        rows, errors = self.predict_paths(paths, progress, batch_size, run=run)
        readable = [p for p in paths if p in rows]
        width = k * (2 if mirror else 1)  # the probabilities' columns, after the features'
        both = np.array([rows[p] for p in readable], np.float32) if readable else np.zeros((0, width), np.float32)
        return both[:, :-width], both[:, -width:], readable, list(errors.items())

    def predict_files(self, paths, batch_size: int = 32, workers: int = 2, tta: bool = False, run=None):
        """Stream ``(path, probabilities or ImageError)`` over many files with bounded memory (``run``: what to
        compute from a decoded batch instead, one row per photo).

        Images are decoded in a thread pool (PIL releases the GIL) one batch ahead of the model.
        """
        run = run or (lambda pixels: self.predict_pixels(pixels, tta))
        paths = list(paths)
        chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
        with ThreadPoolExecutor(workers) as pool:
            ahead = [pool.submit(self._try_decode, p) for p in chunks[0]] if chunks else []
            for i, chunk in enumerate(chunks):
                current = ahead
                ahead = [pool.submit(self._try_decode, p) for p in chunks[i + 1]] if i + 1 < len(chunks) else []
                decoded = [f.result() for f in current]
                good = [d for d in decoded if not isinstance(d, ImageError)]
                probs = iter(run(np.stack(good)) if good else [])
                for path, d in zip(chunk, decoded):
                    yield path, (d if isinstance(d, ImageError) else next(probs))

    def predict_paths(self, paths, progress=None, batch_size: int = 32, tta: bool = False,
                      run=None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Predict many files; returns ``(probabilities, errors)``: ``{path: row}`` for the readable ones and
        ``{path: message}`` for the others. ``progress(done, total)`` is called after each file; ``run``: as
        :meth:`predict_files`."""
        paths = list(paths)
        probs, errors = {}, {}
        for i, (path, out) in enumerate(self.predict_files(paths, batch_size, tta=tta, run=run)):
            if isinstance(out, ImageError):
                errors[path] = str(out)
            else:
                probs[path] = out
            if progress:
                progress(i + 1, len(paths))
        return probs, errors

    def answer(self, probs: np.ndarray, threshold: float | None = None) -> str:
        """The answer for one probability row (:func:`answer`); ``threshold`` defaults to the model's calibrated
        one, if any."""
        return answer(probs, self.classes, self.threshold if threshold is None else threshold)

    def top_k(self, probs: np.ndarray, k: int = TOP_K) -> list[tuple[str, float]]:
        """The ``k`` most likely ``(class_id, probability)`` pairs, best first."""
        order = np.argsort(probs)[::-1][:k]
        return [(self.classes[i], float(probs[i])) for i in order]

    def _try_decode(self, path):
        try:
            return decode(path, self.size)
        except ImageError as e:
            return e
