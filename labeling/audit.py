"""How many wrong labels are left? An estimate, with a 95% interval, of the wrong labels still among the photos no
one reviewed, from a small audit that reviewers label blind.

How: the unreviewed photos of a data set are cut into three strata by what the review queue knows of them: the
classifier disagrees with the label, it agrees but unsure, it agrees and is sure (:data:`SURE`). Wrong labels crowd
into the first, small stratum, which gets up to a fifth of the audit; the rest is shared in proportion to size.
Reviewers label the audit photos without seeing their label, the LLM's answer or the model's; an audit photo
is *wrong* when the reviewer's label differs from the label it had before review. Each stratum's error rate gets a
Jeffreys Beta(x + 1/2, n - x + 1/2) posterior; the count of wrong labels left is, per stratum, a binomial draw of
its photos still unreviewed at that rate, summed over strata: 20,000 Monte Carlo draws give the estimate (the
mean) and the 95% interval (2.5th-97.5th percentiles). ``benchmarks/audit_coverage.py`` measures its coverage and
width beside a plain random audit of the same size.

Two reviewers who both label an audit photo blind give an agreement figure (Cohen's kappa); a photo they disagree on
counts as not audited, and unreviewed, until a third decision settles it.
"""

import json
import time

import numpy as np

SURE = 0.9  # the classifier's probability for the label above which an agreeing photo is in the last stratum
FIRST_SHARE = 0.2  # of the audit, at most, for the first stratum (where the classifier disagrees)


def stratify(ranked_rows: list[dict], sure: float = SURE) -> list[list]:
    """The unreviewed photos (the queue's rows, most suspicious first) in three strata of very different error
    rates: the classifier disagrees with the label (or there is none usable); it agrees, unsure; it agrees, sure."""
    groups = [[], [], []]
    for r in ranked_rows:
        h = 0 if r.get("disagree") or r.get("p_label") is None else 1 if r["p_label"] < sure else 2
        groups[h].append(r["id"])
    return [g for g in groups if g]


def allocate(sizes: list[int], size: int) -> list[int]:
    """How many photos each stratum gives: up to FIRST_SHARE of the audit to the first (error-dense) one, the rest in
    proportion to the strata's sizes, at least one each (never more than a stratum holds)."""
    first = min(sizes[0], int(size * FIRST_SHARE)) if len(sizes) > 1 else min(sizes[0], size)
    others = sizes[1:]
    takes = [1] * len(others)  # at least one each, the rest shared by size, largest remainders first
    spare = max(size - first - len(others), 0)
    share = [spare * n / (sum(others) or 1) for n in others]
    takes = [t + int(x) for t, x in zip(takes, share)]
    order = sorted(range(len(share)), key=lambda i: share[i] - int(share[i]), reverse=True)
    for i in order[:spare - sum(map(int, share))]:
        takes[i] += 1
    return [first] + [min(n, t) for n, t in zip(others, takes)]


def draw(groups: list[list], size: int, seed: int = 0) -> dict:
    """``{image id: (stratum, stratum size, sampled)}`` for every photo of ``groups`` (the strata): an audit of
    ``size`` photos allocated by :func:`allocate`."""
    rng = np.random.default_rng(seed)
    out = {}
    for h, (group, take) in enumerate(zip(groups, allocate([len(g) for g in groups], size))):
        picked = {int(i) for i in rng.choice(len(group), take, replace=False)}
        out.update({image: (h, len(group), j in picked) for j, image in enumerate(group)})
    return out


def estimate(strata: list[tuple[int, int, int]], draws: int = 20_000, seed: int = 0) -> dict:
    """The wrong labels left, from ``[(unreviewed left, audited, audited wrong)]`` per stratum: ``{"estimate",
    "low", "high"}`` (mean and 95% interval over Monte Carlo draws: Jeffreys posterior per stratum, binomial count of
    the photos left)."""
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    for left, n, x in strata:
        rate = rng.beta(x + 0.5, n - x + 0.5, draws)
        total += rng.binomial(max(left, 0), rate)
    return {"estimate": float(total.mean()), "low": float(np.percentile(total, 2.5)),
            "high": float(np.percentile(total, 97.5))}


def kappa(first: list, second: list) -> float | None:
    """Cohen's kappa of two reviewers' labels of the same photos (None under two photos, or no variation)."""
    if len(first) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # not at import: the app starts without scikit-learn

    value = cohen_kappa_score(first, second)
    return None if np.isnan(value) else float(value)


class Audit:
    """The audit of one data set in a label store (its ``audit_items`` table, :mod:`labeling.store`'s schema; the
    latest audit drawn counts)."""

    def __init__(self, store, dataset: str):
        self.store, self.dataset = store, dataset

    def draw(self, ranked_rows: list[dict], size: int, seed: int | None = None) -> int:
        """Draw a new audit among the unreviewed photos of ``ranked_rows`` (the queue's rows, most suspicious first,
        of this data set); returns how many photos it holds."""
        rows = [r for r in ranked_rows if r["dataset"] == self.dataset and r["human_label"] is None]
        before = {r["id"]: r["machine_label"] for r in rows}
        chosen = draw(stratify(rows), size, int(time.time()) if seed is None else seed)
        audit, now = f"{self.dataset}-{time.time():.3f}", time.time()
        with self.store.transaction() as con:
            con.execute("DELETE FROM audit_items WHERE image_id IN (SELECT i.id FROM images i JOIN datasets d ON "
                        "d.id = i.dataset_id WHERE d.name = ?)", (self.dataset,))
            con.executemany("INSERT INTO audit_items VALUES (?, ?, ?, ?, ?, ?, ?)",
                            [(i, audit, h, n, int(s), before[i], now) for i, (h, n, s) in chosen.items()])
        return sum(s for _, _, s in chosen.values())

    def items(self) -> list[dict]:
        """The audit's photos with the reviewers' first blind decision each, in decision order."""
        rows = self.store.query(
            "SELECT a.image_id, a.stratum, a.stratum_size, a.label_before, a.drawn_at FROM audit_items a "
            "JOIN images i ON i.id = a.image_id JOIN datasets d ON d.id = i.dataset_id WHERE d.name = ? "
            "AND a.sampled = 1", (self.dataset,))
        if not rows:
            return []
        decisions = self.store.query(
            "SELECT e.image_id, e.author, e.label FROM events e JOIN audit_items a ON a.image_id = e.image_id "
            "WHERE a.sampled = 1 AND e.source = 'human' AND e.batch IS NULL AND e.created_at >= a.drawn_at "
            "AND e.undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) ORDER BY e.id")
        by_image = {}
        for d in decisions:
            mine = by_image.setdefault(d["image_id"], {})
            mine.setdefault(d["author"], d["label"])  # each reviewer's first blind decision
        return [{**r, "decisions": list(by_image.get(r["image_id"], {}).items())} for r in rows]

    def disputed(self) -> set[int]:
        """The audit photos two reviewers labelled differently and no third has settled: unreviewed until then."""
        return {it["image_id"] for it in self.items()
                if len(it["decisions"]) == 2 and it["decisions"][0][1] != it["decisions"][1][1]}

    def state(self, unreviewed_ids: set) -> dict:
        """The estimate now: per stratum, the photos still unreviewed (audit photos aside), the audited and the
        wrong; the two reviewers' kappa and the photos they disagree on (unsettled until a third decision)."""
        items = self.items()
        if not items:
            return {"drawn": 0}
        strata = {}
        pairs, disputed = [], []
        for it in items:
            h = strata.setdefault(it["stratum"], {"size": it["stratum_size"], "audited": 0, "wrong": 0})
            labels = [label for _, label in it["decisions"]]
            if len(labels) >= 2:
                pairs.append(labels[:2])
            if not labels or (len(labels) == 2 and labels[0] != labels[1]):
                if len(labels) == 2:
                    disputed.append(it["image_id"])
                continue
            settled = labels[2] if len(labels) > 2 and labels[0] != labels[1] else labels[0]
            h["audited"] += 1
            h["wrong"] += settled != it["label_before"]
        members = self.store.query(
            "SELECT a.image_id, a.stratum FROM audit_items a JOIN images i ON i.id = a.image_id JOIN datasets d "
            "ON d.id = i.dataset_id WHERE d.name = ? AND a.sampled = 0", (self.dataset,))
        for h in strata.values():
            h["left"] = 0
        for m in members:  # what is left of each stratum: its photos no one has reviewed since the draw
            if m["image_id"] in unreviewed_ids and m["stratum"] in strata:
                strata[m["stratum"]]["left"] += 1
        left_total = sum(h["left"] for h in strata.values())
        out = {"drawn": len(items), "decided": sum(h["audited"] for h in strata.values()), "disputed": disputed,
               "strata": strata, "left": left_total,
               "kappa": kappa([p[0] for p in pairs], [p[1] for p in pairs]), "pairs": len(pairs)}
        out.update(estimate([(h["left"], h["audited"], h["wrong"]) for h in strata.values()]))
        return out


def verdict(state: dict, photos: int, target: float) -> bool:
    """Whether the 95% interval's top is within ``target`` (a share of the data set's photos): the review can stop."""
    return bool(state.get("decided")) and state["high"] <= target * photos


def dumps(state: dict) -> str:
    return json.dumps(state, default=float)
