"""The UI's strings: every key the code asks for exists in English and Chinese, and no key is left unused."""

import json
import re

from conftest import ROOT


def code_files():
    skip = {".venv", "tests", "runs", "data", "artifacts", "tools", "benchmarks"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_every_key_used_is_defined_in_both_languages_and_every_key_is_used():
    strings = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
    assert set(strings) == {"en", "zh"} and set(strings["en"]) == set(strings["zh"])
    assert all(text.strip() for lang in strings.values() for text in lang.values())
    code = "\n".join(p.read_text(encoding="utf-8") for p in code_files())
    used = set(re.findall(r'\bT\(\s*"([a-z0-9_]+)"\s*\)', code))  # static text
    used |= set(re.findall(r'\bsay\((?:\s*\w+,)?\s*"([a-z0-9_]+)"', code))  # a handler's text
    used |= set(re.findall(r'\b(?:Message|[A-Z]\w*Error|PathNotAllowed)\(\s*"([a-z0-9_]+)"', code))  # refusals
    used |= set(re.findall(r"\bprogress_bar\([^)]*\"([a-z0-9_]+)\"\)", code))
    used |= set(re.findall(r'\b(?:require|door)\([^)"]*"([a-z0-9_]+)"', code))  # what needs the password
    assert used and not used - set(strings["en"]), sorted(used - set(strings["en"]))
    # a key may also be named where it is chosen (Guard.notice returns one): any quoted literal counts as a use,
    # and so does a key of a family the code builds (f"status_{s}"), whose members are checked below
    named = set(re.findall(r'"([a-z0-9_]+)"', code))
    families = tuple(set(re.findall(r'f"([a-z0-9_]+_)\{', code)))
    gradios = {k for k in strings["en"] if "." in k}  # Gradio's own words, which its page asks the catalog for
    assert not {k for k in set(strings["en"]) - named - gradios if not k.startswith(families)}, \
        sorted(set(strings["en"]) - named)
    # the Chinese side is Chinese: at least one CJK character in each string that has words
    english_only = [k for k, v in strings["zh"].items() if re.search("[A-Za-z]{3}", v)
                    and not re.search("[\u4e00-\u9fff]", v)]
    assert not english_only, english_only


def test_every_member_of_a_key_family_is_defined():
    from classifier.classes import CLASSES
    from labeling.review import SORTS, STATUSES
    from labeling.store import REASONS, SOURCES
    from studio.evaluate import PER_CLASS_COLUMNS
    from studio.review_view import IMPACT_COLUMNS
    from training.limits import LIMITS

    strings = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))["en"]
    wanted = [f"status_{s}" for s in STATUSES] + [f"sort_{s.replace(' ', '_')}" for s in SORTS]
    wanted += [f"col_{c}" for c in (*IMPACT_COLUMNS, *PER_CLASS_COLUMNS, "class_test", "class_val",
                                    "class_out_of_fold")]
    wanted += [f"source_{s}" for s in (*SOURCES, "nobody")] + [f"field_{n}" for n in LIMITS if n != "views"]
    wanted += [f"state_{s}" for s in ("starting", "running", "done", "failed", "cancelled")]
    wanted += [f"filter_{s}" for s in ("none", "other")] + [f"tr_on_{s}" for s in ("test", "val", "held_out")]
    wanted += [f"rv_out_{r}" for r in REASONS]  # why a photo was left out
    assert CLASSES and not [k for k in wanted if k not in strings]


def test_figures_draw_chinese_with_a_real_font_not_boxes(tmp_path):
    import warnings

    import numpy as np

    from classifier.classes import CLASSES, NONE
    from evaluation.plots import confusion_matrix_figure, save_figure

    with warnings.catch_warnings(record=True) as caught:  # matplotlib warns "Glyph ... missing" for each box
        warnings.simplefilter("always")
        save_figure(confusion_matrix_figure(np.eye(11, dtype=int), [*CLASSES, NONE], "猫 狗"), tmp_path / "m.png")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message)]
    assert (tmp_path / "m.png").stat().st_size > 10_000 and not missing, \
        f"no CJK font: install fonts-noto-cjk ({missing[:1]})"


def test_gradios_own_words_have_the_pages_language():
    """Gradio's page asks its catalog for keys its Chinese catalog lacks (``common.complete``, said once an event
    is done; ``status.queue_position``...): the app's catalog has them, each a key Gradio's page does ask for; the
    few words Gradio writes with no key (``processing |``) are put in the page's words by assets/language.js."""
    from pathlib import Path

    import gradio

    strings = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
    frontend = "\n".join(p.read_text(errors="replace") for p in
                         (Path(gradio.__file__).parent / "templates" / "frontend" / "assets").glob("*.js"))
    gradios = {k for k in strings["en"] if "." in k}
    assert {"common.complete", "status.queue_position"} <= gradios
    assert all(f"i18n(`{k}`" in frontend for k in gradios), [k for k in gradios if f"i18n(`{k}`" not in frontend]
    assert "`processing |`" in frontend and "queue: ${" in frontend  # the words language.js translates
    script = (ROOT / "assets" / "language.js").read_text()
    assert "processing \\|" in script and "queue: " in script and "studioGradioWords" in script
