"""``tppscan models eval detector|classifier|focus --data DIR [--model FILE] [--json]``: held-out metrics.

The dataset is one made by ``tppscan dataset`` (its ``meta.json`` says which kind). Detector: COCO mAP
through pycocotools (:mod:`models.detector.evaluate`); classifier and focus net: the metrics functions beside
their training code (``models.classifier.metrics.evaluate``, ``models.focusnet.metrics.evaluate``). ``--json``
prints one JSON object (``map50`` / ``accuracy`` / ``mae_um``, ``class_accuracy``, ``within_one_accuracy``,
``sign_accuracy``, and ``n``); otherwise one ``key: value`` line per metric.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

# model -> (module, function, dataset kind it needs)
EVALUATORS: dict[str, tuple[str, str, str]] = {
    "detector": ("models.detector.evaluate", "evaluate_detector", "detection"),
    "classifier": ("models.classifier.metrics", "evaluate", "classifier"),
    "focus": ("models.focusnet.metrics", "evaluate", "focus"),
}


def register(sub: Any) -> None:
    """Add the ``models`` command group with ``eval``."""
    p = sub.add_parser("models", help="evaluate the shipped models",
                       description="Model tools: held-out metrics on datasets from `tppscan dataset`.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    ss = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    e = ss.add_parser("eval", help="metrics of a model on a dataset",
                      description="Metrics of the detector, classifier or focus net on a dataset made by "
                                  "`tppscan dataset` (use a held-out split).",
                      epilog="example: tppscan models eval detector --data data/det-test --at-scale")
    e.add_argument("model_kind", choices=sorted(EVALUATORS), metavar="MODEL",
                   help="detector, classifier or focus")
    e.add_argument("--data", type=Path, required=True, help="dataset folder")
    e.add_argument("--model", type=Path, default=None, help="model file (default: the shipped one)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--limit", type=int, default=None, help="detector: use only the first N frames (>= 1)")
    e.add_argument("--at-scale", action="store_true",
                   help="detector: tell it each frame's pixel size, as a scan does (it reads frames at the scale "
                        "it was trained on)")
    e.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from models.data.cli import read_meta

    if args.limit is not None and (args.limit < 1 or args.model_kind != "detector"):
        print(f"tppscan models eval: error: --limit must be an integer >= 1 and applies to the detector only, "
              f"got {args.limit} for {args.model_kind}", file=sys.stderr)
        return 2
    if args.at_scale and args.model_kind != "detector":
        print(f"tppscan models eval: error: --at-scale applies to the detector only, got {args.model_kind}",
              file=sys.stderr)
        return 2
    mod_name, fn_name, kind = EVALUATORS[args.model_kind]
    meta = read_meta(args.data)
    if meta["kind"] != kind:
        print(f"tppscan models eval: error: --data {args.data} is a {meta['kind']!r} dataset; the {args.model_kind} "
              f"needs one made by `tppscan dataset {kind}`", file=sys.stderr)
        return 2
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except ModuleNotFoundError:
        raise OSError(f"the {args.model_kind} evaluation ({mod_name}) is not part of this version") from None
    kwargs: dict[str, Any] = {"limit": args.limit} if args.limit else {}
    if args.at_scale:
        kwargs["at_scale"] = True
    if meta.get("split") == "train":  # the figures then say how well it fits, not how well it generalises
        print(f"tppscan models eval: note: --data {args.data} is a training split; its figures are not held-out "
              "(make a test set with `tppscan dataset ... --split test`)", file=sys.stderr)
    result = fn(args.data, args.model, **kwargs)
    result = {"model_kind": args.model_kind, "data": str(args.data), "split": meta.get("split"), **result}
    if args.json:
        print(json.dumps(result, default=_jsonable))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def _jsonable(o: Any) -> Any:
    try:
        return o.tolist()
    except AttributeError:
        return str(o)
