"""A scorecard for the LLM labeller: how its labels fare against the labels people reviewed.

For each LLM model and prompt version the store recorded: how many of its answers were reviewed, its accuracy
against the reviewed label (with a 95% Wilson interval), how often it said none of the ten or gave no usable
answer, and how often the classifier agreed with it and both were wrong (the mistakes neither would catch). And,
for the most reviewed of them, its confusion: the reviewed label against what the LLM said.
"""

import pandas as pd

from classifier.classes import CLASSES, NONE, display_name
from i18n import column_names, say

COLUMNS = ("llm", "reviewed", "llm_accuracy", "llm_ci", "said_none", "no_answer", "both_wrong")  # col_<name> keys


def scorecard(answers, reviewed: dict, predicted: dict, lang: str = "en") -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``answers``: :meth:`LabelStore.llm_answers`; ``reviewed``: ``{image_id: label a person gave}``;
    ``predicted``: ``{image_id: the classifier's top class}``. Returns the table per LLM model and prompt version,
    the confusion (reviewed label by row, LLM answer by column) of the most reviewed one, and that one's name."""
    groups = {}
    for a in answers:
        if a["image_id"] in reviewed:
            groups.setdefault(f"{a['model'] or '?'} · {a['prompt_version'] or '?'}", []).append(a)
    from scipy.stats import binomtest  # not at import: the app starts without SciPy

    rows = []
    for name, items in sorted(groups.items(), key=lambda g: -len(g[1])):
        truth = [reviewed[a["image_id"]] for a in items]
        said = [a["label"] if a["status"] == "ok" else None for a in items]
        right = sum(s == t for s, t in zip(said, truth))
        low, high = binomtest(right, len(items)).proportion_ci(method="wilson")
        both = sum(predicted.get(a["image_id"]) == s != t for a, s, t in zip(items, said, truth) if s is not None)
        rows.append([name, len(items), round(right / len(items), 3), f"{low:.2f}–{high:.2f}",
                     sum(s == NONE for s in said), sum(s is None for s in said), both])
    table = pd.DataFrame(rows, columns=column_names(COLUMNS, lang))
    if not groups:
        return table, pd.DataFrame(columns=[say(lang, "col_reviewed_llm")]), ""
    name, items = max(groups.items(), key=lambda g: len(g[1]))
    return table, confusion(items, reviewed, lang), name


def confusion(items, reviewed, lang="en") -> pd.DataFrame:
    """Counts of (reviewed label, LLM answer), the ten classes and none in order, "no answer" last."""
    no_answer = say(lang, "col_no_answer")
    order = [*CLASSES, NONE]
    truth = [reviewed[a["image_id"]] for a in items]
    said = [a["label"] if a["status"] == "ok" else no_answer for a in items]
    table = pd.crosstab(pd.Series(truth, name="truth"), pd.Series(said, name="said"))
    rows = [r for r in order if r in table.index] + sorted(set(table.index) - set(order))
    columns = [c for c in order if c in table.columns] + sorted(set(table.columns) - {*order, no_answer}) + \
        ([no_answer] if no_answer in table.columns else [])
    table = table.reindex(index=rows, columns=columns, fill_value=0)
    out = table.rename(index=_shown, columns=_shown).reset_index(names=say(lang, "col_reviewed_llm"))
    out.columns = [str(c) for c in out.columns]
    return out


def _shown(label):
    return display_name(label) if label in (*CLASSES, NONE) else label
