"""The house's shape, read off the code: Gradio only in studio/ and app.py, no import cycle, arrows only downwards,
short functions in the UI layer, and the vocabulary derived from the class list."""

import ast

from conftest import ROOT

PACKAGES = ("classifier", "labeling", "training", "evaluation", "studio")
# who may import whom (besides the standalone modules i18n, escaping, settings, uploads); labeling uses evaluation's
# metrics (one scoring for the review's impact and the Evaluate tab), by design; a package's command line
# (``__main__``) is a front door like the studio and may use its siblings (``python -m evaluation run --db`` reads the
# label store)
# labeling sits above training: a training set's labels are reviewed with the recipe's own out-of-fold
# probabilities (training.out_of_fold), and training never reads the label store's modules
ALLOWED = {"classifier": set(), "evaluation": {"classifier"}, "training": {"classifier", "evaluation"},
           "labeling": {"classifier", "evaluation", "training"}, "studio": set(PACKAGES)}


def modules():
    """``{dotted name: path}`` of the project's own modules (not tests, benchmarks or tools)."""
    out = {}
    for path in sorted(ROOT.glob("*.py")) + sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name, path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def graph():
    mods = modules()
    return {n: {m for m in imported(n, p) if m in mods and m != n} for n, p in mods.items()}, mods


def test_only_the_ui_layer_imports_gradio():
    _, mods = graph()
    users = sorted(n for n, p in mods.items() if any(m == "gradio" or m.startswith("gradio.")
                                                      for m in imported(n, p)))
    assert users and all(n == "app" or n.startswith("studio") for n in users), users


def test_no_import_cycle():
    edges, _ = graph()
    seen, done, cycles = set(), set(), []

    def visit(node, path):
        seen.add(node)
        for nxt in sorted(edges[node]):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    for node in sorted(edges):
        if node not in done:
            visit(node, [node])
    assert cycles == []


def test_arrows_only_point_down():
    edges, _ = graph()
    wrong = []
    for name, targets in edges.items():
        top = name.split(".")[0]
        for t in targets:
            other = t.split(".")[0]
            front_door = name.endswith(".__main__") and other != "studio"
            if top in ALLOWED and other in PACKAGES and other != top and other not in ALLOWED[top] and not front_door:
                wrong.append((name, t))
            if other == "app" and name != "app":
                wrong.append((name, t))
    assert wrong == []


def test_no_function_in_the_ui_layer_is_longer_than_60_lines():
    long = []
    for path in sorted((ROOT / "studio").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_an_eleventh_class_gets_a_key_a_button_and_a_place_on_the_slider(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import gradio as gr

    import studio.classify
    import studio.review
    from classifier.classes import CLASSES, class_keys, rows_of
    from classifier.serving import ModelSlot
    from settings import Settings
    from studio.common import T

    eleven = (*CLASSES, "goat")
    keys = class_keys(eleven)
    assert keys[:10] == list("1234567890") and keys[10] == "q" and "n" not in keys and len(set(keys)) == 11
    assert [len(r) for r in rows_of(eleven)] == [5, 5, 1]
    monkeypatch.setattr(studio.review, "CLASSES", eleven)
    monkeypatch.setattr(studio.classify, "CLASSES", eleven)
    with gr.Blocks():
        ui = SimpleNamespace()
        studio.review.review_panel(ui)
    assert [c for c, _ in ui.buttons] == list(eleven)
    assert [b.elem_id for _, b in ui.buttons][-1] == "rv-class-q"
    settings = Settings(data_dir=tmp_path)
    with gr.Blocks() as blocks:
        studio.classify.build(settings, ModelSlot(settings.model_path), None, T)
    sliders = [b for b in blocks.blocks.values() if isinstance(b, gr.Slider)]
    assert [s.maximum for s in sliders] == [11]


def test_more_classes_than_keys_is_refused_clearly():
    import pytest

    from classifier.classes import KEY_ROW, class_keys

    with pytest.raises(ValueError, match="add keys to classifier.classes.KEY_ROW"):
        class_keys(tuple(f"c{i}" for i in range(len(KEY_ROW) + 1)))


def test_a_tabs_handlers_are_plain_functions_a_test_can_call(tmp_path):
    """No server needed: a handler group is built from its dependencies and called with a request object."""
    import gradio as gr

    from settings import Settings
    from studio.evaluate import handlers
    from studio.guard import Guard

    settings = Settings(data_dir=tmp_path)
    on = handlers(settings, Guard(settings))
    request = gr.Request(headers={"accept-language": "zh-CN"})
    threshold, line = on.use(request, None, "20261206-run", 0.42)  # a request and a profile (None: not signed in)
    assert threshold == 0.42 and "0.42" in line and any("\u4e00" <= ch <= "\u9fff" for ch in line)  # in Chinese
    import pytest

    with pytest.raises(gr.Error):  # no evaluation yet: a refusal in the viewer's words
        on.use(request, None, None, 0.42)


def test_the_app_imports_at_start_only_what_the_first_answer_needs():
    """A fresh start is mostly imports: TensorFlow, scikit-learn, SciPy, matplotlib and openai are imported by the
    functions that use them (training, evaluation, figures, auto-label), not by ``import app``."""
    import json
    import subprocess
    import sys

    heavy = ("tensorflow", "keras", "sklearn", "scipy", "matplotlib", "openai")
    code = f"import sys, json, app; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_apps_are_built_without_the_fastapi_apps_gradio_throws_away():
    """``app.served_apps_only``: while the studio is built no FastAPI app is made (mount_gradio_app makes the served
    one), and Gradio's own is back afterwards, also after an error."""
    import gradio as gr
    import pytest

    import app

    with app.served_apps_only():
        with gr.Blocks() as built:
            gr.Textbox()
        built.queue(max_size=3)
    assert built.app is None and built._queue.max_size == 3
    with pytest.raises(RuntimeError), app.served_apps_only():
        raise RuntimeError("a failed build")
    with gr.Blocks() as later:
        gr.Textbox()
    assert later.app is not None


def test_gradios_backend_switch_around_each_event_never_touches_pyplot():
    """Gradio sets matplotlib's backend to "agg" around every event and back. The app's MPLBACKEND makes that no
    switch at all: a switch calls pyplot, which fails while another thread is still importing it (a first
    evaluation, beside a request joining the queue: seen once in 40 concurrent joins)."""
    import subprocess
    import sys

    code = ("import sys, app, matplotlib, gradio.utils\n"
            "import evaluation.plots  # what a first evaluation imports: it sets the backend too\n"
            "class Importing:  # pyplot half imported by another thread\n"
            "    def __getattr__(self, name): raise AttributeError(f'partially initialized: {name}')\n"
            "sys.modules['matplotlib.pyplot'] = Importing()\n"
            "with gradio.utils.MatplotlibBackendMananger(): pass\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
