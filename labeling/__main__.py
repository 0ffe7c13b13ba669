"""``python -m labeling {import,autolabel,suspects,leave-out,export,stats}``: the label store from the command line.

  import     add a folder of images (flat testdata/<n>.jpg or class folders) and an optional results.json
  autolabel  ask GLM-4V (or any OpenAI-compatible vision endpoint) for the images without an LLM label
  suspects   rank images by how likely their label is wrong (CSV, or JSON with scores)
  leave-out  a reviewer's decision to leave a photo out of scoring, training and export, with a reason (JSON)
  export     current labels as results.json (the original's shape, English class ids), optionally the history as CSV
  stats      review progress
"""

import argparse
import csv
import json
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from escaping import cell
from labeling.providers import PROVIDERS
from labeling.store import REASONS
from settings import Settings

DB_HELP = "the label database: a SQLite file (the app keeps its own at DATA_DIR/labels.db; import creates one)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m labeling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    im = sub.add_parser("import", help="add images and labels to the store")
    im.add_argument("--db", required=True, help=DB_HELP)
    im.add_argument("--images", required=True, help="folder of images, or an archive of one (.zip, .tar.gz): "
                                                    "unpacked into DATA_DIR/datasets first, as an upload")
    im.add_argument("--labels", help="results.json {image stem: label or null}; default: class folder names")
    au = sub.add_parser("autolabel", help="label images with a vision LLM (GLM-4V by default; LLM_* settings)")
    au.add_argument("--db", required=True, help=DB_HELP)
    llm = Settings.from_env()  # LLM_BASE_URL, LLM_MODEL, LLM_PROVIDER, else the app's defaults: one place for all
    au.add_argument("--base-url", default=llm.llm_base_url, help="OpenAI-compatible endpoint (default: %(default)s)")
    au.add_argument("--model", default=llm.llm_model, help="default: %(default)s")
    au.add_argument("--provider", default=llm.llm_provider, choices=sorted(PROVIDERS),
                    help="glm: Zhipu's error codes; openai: any OpenAI-compatible endpoint (default: %(default)s)")
    au.add_argument("--concurrency", type=int, default=2, help="requests at a time (default: %(default)s)")
    au.add_argument("--limit", type=int, help="label at most N images (try before spending)")
    au.add_argument("--unsure-below", type=float, metavar="P",
                    help="ask only about images whose top probability (default model, or --classifier) is under P, "
                         "or whose top class is one of --weak: spend the LLM where the classifier is unsure")
    au.add_argument("--weak", default="", help="classes the classifier is known to confuse, e.g. cat,dog")
    au.add_argument("--classifier", help="model file for --unsure-below (default: the app's default model)")
    au.add_argument("--no-data-prefix", action="store_true",
                    help="send raw base64 without the data:image/jpeg;base64, prefix (as Zhipu's own example)")
    au.add_argument("--timeout", type=float, default=60, help="seconds per request (default: %(default)s)")
    au.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (default: %(default)s)")
    su = sub.add_parser("suspects", help="rank images by how likely their label is wrong")
    su.add_argument("--db", required=True, help=DB_HELP)
    su.add_argument("--model", help="model file; default: the app's default model")
    su.add_argument("--top", type=int, default=100, help="rows to write (default: %(default)s)")
    su.add_argument("--out", help="suspects.csv (needed without --json)")
    su.add_argument("--json", action="store_true", help="print the ranked keys with their scores as JSON")
    su.add_argument("--dataset", help="rank only this imported folder (its name or path)")
    su.add_argument("--out-of-fold", action="store_true",
                    help="rank as a training set: by a probe of the set's labels that never saw the photo, not by "
                         "the model (automatic for a data set the model was trained on)")
    su.add_argument("--self-confidence", action="store_true",
                    help="rank by the model's probability of the label alone (no features: quicker)")
    lo = sub.add_parser("leave-out", help="leave a photo out, with a reason (or --undo the author's latest decision)")
    lo.add_argument("--db", required=True, help=DB_HELP)
    lo.add_argument("--key", help="the photo's key (its path without extension, as in results.json)")
    lo.add_argument("--dataset", help="which imported folder; needed when the store holds more than one")
    lo.add_argument("--reason", choices=REASONS, help="several: two or more of the classes; cannot_tell; "
                                                      "not_animal: not a photo of an animal; copy: of another photo")
    lo.add_argument("--author", required=True, help="the reviewer, recorded with the decision")
    lo.add_argument("--undo", action="store_true", help="undo the author's latest decision instead (a review's undo)")
    ex = sub.add_parser("export", help="write current labels (and history)")
    ex.add_argument("--db", required=True, help=DB_HELP)
    ex.add_argument("--out", required=True, help="results.json")
    ex.add_argument("--dataset", help="which imported folder (its name or path); needed when the store holds more "
                                      "than one (python -m labeling stats lists them)")
    ex.add_argument("--csv", help="also write the full label history as CSV")
    st = sub.add_parser("stats", help="review progress")
    st.add_argument("--db", required=True, help=DB_HELP)
    return p.parse_args(argv)


def do_import(store, args):
    from classifier.labels import labels_file
    from uploads import folder_of

    settings = Settings.from_env()
    folder = folder_of(args.images, settings)
    result = store.import_folder(folder, args.labels or labels_file(folder))
    if store.journal and settings.layout.datasets.resolve() in Path(folder).resolve().parents:
        store.journal.keep_dataset(folder)  # the app's data set: its photos come back with its labels
    print(f"data set {result['dataset']}: {result['images']} images ({result['added']} new), "
          f"{result['labels_added']} labels added")
    if result["labels_without_image"]:
        print(f"{len(result['labels_without_image'])} labels have no image, e.g. "
              f"{result['labels_without_image'][:5]}", file=sys.stderr)
    if result["images_without_label"]:
        print(f"{len(result['images_without_label'])} images have no label, e.g. "
              f"{result['images_without_label'][:5]}", file=sys.stderr)


def do_autolabel(store, args):
    import dataclasses

    from labeling.llm import BatchStopped, autolabel
    from labeling.providers import labeler_from

    settings = dataclasses.replace(Settings.from_env(), llm_base_url=args.base_url, llm_model=args.model,
                                   llm_provider=args.provider, llm_data_prefix=not args.no_data_prefix)
    try:
        labeler = labeler_from(settings, timeout=args.timeout, backoff=args.backoff)
    except BatchStopped as e:
        sys.exit(f"error: {e}")
    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl+C: finish the requests in flight, then stop
    bar = tqdm(desc="autolabel", unit="img")

    def progress(done, total, rate, eta):
        bar.total = total
        bar.update(done - bar.n)

    skip = set()
    if args.unsure_below is not None:
        from classifier.predictor import Classifier
        from labeling.suspects import label_sure, model_key, predict_store, sure

        clf = Classifier.load(args.classifier)
        predict_store(store, clf)
        weak = [w for w in args.weak.split(",") if w]
        skip = sure(store.cached_predictions(model_key(clf)), clf.classes, args.unsure_below, weak)
        print(f"{len(skip)} images left to the classifier (top probability >= {args.unsure_below}, not {weak})",
              file=sys.stderr)
    summary = autolabel(store, labeler, args.limit, args.concurrency, progress, cancel, skip)
    if skip:
        summary["model_labelled"] = label_sure(store, clf, skip)
    bar.close()
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
    for line in summary.get("errors", [])[:10]:
        print(f"failed: {line}", file=sys.stderr)
    if summary["stopped"]:
        sys.exit(f"stopped: {summary['stopped']}")


def do_suspects(store, args):
    from classifier.predictor import Classifier
    from labeling.suspects import predict_store, rank

    if not args.out and not args.json:
        raise ValueError("say where the suspects go: --out suspects.csv, or --json")
    name = store.dataset(args.dataset)["name"] if args.dataset else None
    clf = Classifier.load(args.model, fallback=Settings.from_env().low_confidence)
    bar = tqdm(desc="predict", unit="img")
    probs = predict_store(store, clf, progress=lambda i, n: (setattr(bar, "total", n), bar.update(i - bar.n)))
    bar.close()
    state = store.state(dataset=name)
    rows = rank(state, probs, clf.classes, clf.none_threshold)
    if not args.self_confidence:
        rows = _finer_ranking(store, args, clf, state, rows)
    if args.json:
        from labeling.curation import listing

        uids = {r["id"]: r["uid"] for r in state}
        print(json.dumps({"dataset": name, "model": clf.name, "photos": len(rows),
                          "suspects": listing(rows[: args.top], uids)}, ensure_ascii=False, indent=1))
        if not args.out:
            return
    rows = rows[: args.top]
    fields = ["dataset", "key", "path", "current_label", "source", "predicted", "p_label", "p_predicted", "rank"]
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: cell(v) for k, v in {
                "dataset": r["dataset"], "key": r["key"], "path": r["path"], "current_label": r["label"],
                "source": r["source"], "predicted": r["predicted"], "p_label": _fmt(r["p_label"]),
                "p_predicted": _fmt(r["p_predicted"]), "rank": r["rank"]}.items()})  # opened in spreadsheets
    print(f"{len(rows)} suspects written to {args.out}", file=sys.stderr if args.json else sys.stdout)


def _finer_ranking(store, args, clf, state, rows):
    """``rows`` ranked again by :func:`labeling.quality.review_scores` (out of fold where asked, or for a data set
    the model was trained on), from the photos' features (cached beside the store), with their copies."""
    from labeling.curation import (
        by_set,
        features_cache,
        find_copies,
        out_of_fold_sets,
        rerank,
        score_set,
        store_features,
    )
    from labeling.suspects import model_key

    bar = tqdm(desc="features", unit="img")
    feats = store_features(state, clf, features_cache(store.path, model_key(clf)),
                           lambda i, n: (setattr(bar, "total", n), bar.update(i - bar.n)))
    bar.close()
    scored = {}
    for name, (set_rows, oof) in by_set(state, out_of_fold_sets(state, clf.meta, args.out_of_fold)).items():
        scored[name] = score_set(set_rows, feats, oof)
        if scored[name].why:
            print(f"{name}: ranked by the model's probability of the label ({scored[name].why})", file=sys.stderr)
    return rerank(rows, scored, find_copies(feats, clf.path))


def do_leave_out(store, args):
    """Leave one photo out (or undo the author's latest decision); prints what was done, as JSON."""
    if args.undo:
        undone = store.undo(args.author)
        print(json.dumps({"undone": [r["uid"] for r in store.state(undone)], "author": args.author},
                         ensure_ascii=False))
        return
    if args.key is None or args.reason is None:
        raise ValueError(f"--key and --reason are needed (a reason: one of {', '.join(REASONS)})")
    name = store._one_dataset(args.dataset)
    row = next((r for r in store.state(dataset=name) if r["key"] == args.key), None)
    if row is None:
        raise ValueError(f"no photo {args.key!r} in data set {name!r}")
    event = store.leave_out(row["id"], args.reason, args.author)
    print(json.dumps({"dataset": name, "key": args.key, "reason": args.reason, "author": args.author,
                      "event": event}, ensure_ascii=False))


def do_export(store, args):
    out = store.export_results(args.out, args.dataset)
    left = store.stats(store.state(dataset=store._one_dataset(args.dataset)))["left_out"]
    print(f"{len(out)} labels written to {args.out}" + (f"; {left} photos left out by reviewers" if left else ""))
    if args.csv:
        print(f"{store.export_history(args.csv)} events written to {args.csv}")


def do_stats(store, args):
    print(json.dumps({**store.stats(), "datasets": store.datasets()}, indent=2, ensure_ascii=False))


def _fmt(x):
    return "" if x is None else f"{x:.4f}"


def open_store(db):
    """The label store at ``db``. The app's own (``DATA_DIR/labels.db``) is journaled to ``PERSIST_DIR`` where that
    is set, as the app journals it: what the command line writes there outlives a host's restart too."""
    from labeling.store import LabelStore

    settings = Settings.from_env()
    own = Path(db).resolve() == settings.layout.labels_db.resolve()
    return LabelStore(db, settings.journal() if own else None)


def main(argv=None):
    from classifier.labels import LabelFileError
    from labeling.journal import JournalError

    args = parse_args(argv)
    commands = {"import": do_import, "autolabel": do_autolabel, "suspects": do_suspects, "leave-out": do_leave_out,
                "export": do_export, "stats": do_stats}
    try:
        commands[args.command](open_store(args.db), args)
    except (FileNotFoundError, LabelFileError, ValueError, JournalError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
