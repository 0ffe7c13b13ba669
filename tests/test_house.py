"""One rule per fact, read off the code: where the app keeps what it writes, which events are costly, what each tab
hands the app, and which label sources there are."""

import ast
import dataclasses

from conftest import ROOT

from settings import Layout, Settings


def test_data_dirs_layout_is_named_in_one_place(tmp_path, monkeypatch):
    """``settings.Layout`` names what lies under DATA_DIR; no other module of the app spells those names as a
    folder or file (``x / "runs"``), so a change of layout is one edit. The model cache the classifier package
    defaults to on its own (it sits below the settings) is the layout's."""
    from classifier.modelfile import default_cache


    layout = Layout(tmp_path, tmp_path / "bucket")
    assert (layout.labels_db, layout.runs, layout.evaluations, layout.hub, layout.datasets) == (
        tmp_path / "labels.db", tmp_path / "runs", tmp_path / "evaluations", tmp_path / "hub", tmp_path / "datasets")
    assert [layout.kept(k) for k in Layout.KEPT] == [tmp_path / "bucket" / "runs", tmp_path / "bucket" / "evaluations"]
    assert Layout(tmp_path).kept("runs") is None and Settings(data_dir=tmp_path).layout == Layout(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MODEL_CACHE", raising=False)
    assert default_cache() == layout.tflite == Settings.from_env().model_cache
    names = {"labels.db", "runs", "evaluations", "hub", "tflite"}
    spelled = []
    files = [*ROOT.glob("*.py"), *(p for pkg in ("classifier", "labeling", "training", "evaluation", "studio")
                                   for p in (ROOT / pkg).rglob("*.py"))]
    for path in files:
        if path.name == "settings.py" or path.relative_to(ROOT).as_posix() == "classifier/modelfile.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                    isinstance(node.right, ast.Constant) and node.right.value in names:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.right.value}")
    assert spelled == []


def test_the_app_is_built_from_typed_parts_and_its_costly_events_are_those_its_doors_say(tmp_path, monkeypatch):
    """Each tab's ``build`` hands the app a small dataclass (not a dict of names); the events counted as costly at
    the door (at most MAX_COSTLY in at once) are the ones whose door says ``costly``, read off the built app."""
    import app
    from studio import classify, evaluate, review, train
    from studio.guard import Guard

    built = {}
    for tab in (classify, review, evaluate, train):
        monkeypatch.setattr(tab, "build", lambda *a, _build=tab.build, _tab=tab, **k: built.setdefault(
            _tab.__name__, _build(*a, **k)))
    settings = Settings(data_dir=tmp_path, data_roots=(tmp_path / "datasets",))
    demo = app.build_app(settings)
    assert {name: type(parts).__name__ for name, parts in built.items()} == {
        "studio.classify": "ClassifyParts", "studio.review": "ReviewParts", "studio.evaluate": "EvaluateParts",
        "studio.train": "TrainParts"}
    assert all(dataclasses.is_dataclass(parts) for parts in built.values())
    guard = Guard(settings)
    guard.blocks = demo
    assert guard.costly_ids() == {"evaluate", "import", "autolabel", "export", "train", "curate"}
    assert guard.waiting() == (0, 0)


def test_one_list_of_label_sources():
    """The sources an evaluation scores against: the store's three and the data set's own file, each with its
    words in both languages; no module spells ``"file"`` as a source."""
    import json

    from labeling.labelset import FILE, LABEL_SOURCES, SOURCES

    assert LABEL_SOURCES == (*SOURCES, FILE)
    strings = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
    for lang in ("en", "zh"):
        assert all(f"labels_{s}" in strings[lang] and f"ev_source_{s}" in strings[lang] for s in LABEL_SOURCES)
    spelled = [f"{p.relative_to(ROOT)}:{node.lineno}" for pkg in ("studio", "evaluation", "labeling")
               for p in (ROOT / pkg).rglob("*.py") for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value == FILE
                                                         for c in (node.left, *node.comparators))]
    assert spelled == []
