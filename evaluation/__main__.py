"""``python -m evaluation predict``: classify a folder of photos like the original ``predict.py`` did."""

import argparse
import sys

from tqdm import tqdm


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m evaluation", description="Batch prediction and evaluation.")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="predict every image in a folder",
                        description="Predict every image under --images; keys are paths relative to it without "
                                    "the extension (cat/001, or 17 for testdata/17.jpg).")
    pr.add_argument("--model", help="model file (.keras or .npz); default: the app's default model")
    pr.add_argument("--images", required=True, help="folder of images (flat or class folders)")
    pr.add_argument("--out", required=True, help="predictions.json to write: {key: top-1 class id}")
    pr.add_argument("--probs", help="also write a CSV: key, then one probability column per class")
    pr.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    return p.parse_args(argv)


def predict(args):
    from classifier.model import Classifier
    from evaluation.predict import list_images, predict_folder, write_predictions

    clf = Classifier.load(args.model)
    total = len(list_images(args.images))
    with tqdm(total=total, desc="predict", unit="img") as bar:
        probs, errors = predict_folder(clf, args.images, args.batch_size, progress=lambda i, n: bar.update(1))
    for key, message in errors.items():
        print(f"unreadable: {key}: {message}", file=sys.stderr)
    write_predictions(probs, clf.classes, args.out, args.probs)
    print(f"{len(probs)} predictions written to {args.out}; {len(errors)} unreadable files skipped")


def main(argv=None):
    args = parse_args(argv)
    try:
        {"predict": predict}[args.command](args)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
