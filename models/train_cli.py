"""``tppscan train detector|classifier|focus|reader``: train a shipped model on rendered data, or go on from one.

Each model is a row of :data:`TRAINERS`: the module that defines ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported when their subcommand runs, except for their options, which are
read when the parser is built (the trainer modules import torch only inside their functions).
"""

from __future__ import annotations

import importlib
from typing import Any

from appliance.helpformat import DefaultsHelpFormatter

# subcommand -> (module, one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "detector": ("models.detector.train", "the detectNet-style ONNX detector (structure / debris)"),
    "classifier": ("models.classifier.train", "the structure-type classifier (TFLite)"),
    "focus": ("models.focusnet.train", "the single-frame defocus net (TFLite)"),
    "reader": ("models.focusreader.train", "the learned reading of a classical search's frames (ONNX)"),
}
#: One example line under each trainer's --help.
TRAIN_EXAMPLES: dict[str, str] = {
    "detector": "example: tppscan train detector --data det-train --val det-val --out det",
    "classifier": "example: tppscan train classifier --data cls-train --val cls-val --out cls",
    "focus": "example: tppscan train focus --data focus-train --val focus-val --out focus",
    "reader": "example: tppscan train reader --out reader (searches its own slides: about 12 minutes on 2 cores)",
}


def register(sub: Any) -> None:
    """Add the ``train`` command group."""
    p = sub.add_parser("train", help="train a model on data from `tppscan dataset` (or, for the detector, a scan)",
                       description="Train one of the shipped models on rendered data, from scratch or (--init) from "
                                   "earlier weights; the detector also trains on a scan's export_coco.json.")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    ss = p.add_subparsers(dest="train_command", metavar="MODEL")
    for name, (mod_name, text) in TRAINERS.items():
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (mod_name.startswith(exc.name) or _ours(exc.name)):
                raise
            continue  # that model's trainer, or the part of the project it needs, is not part of this version
        q = ss.add_parser(name, help=text, description=f"Train {text}.", epilog=TRAIN_EXAMPLES.get(name),
                          formatter_class=DefaultsHelpFormatter)
        mod.add_arguments(q)
        q.set_defaults(func=mod.run)


def _ours(module: str) -> bool:
    """Whether ``module`` belongs to this project (``appliance`` or ``models``).

    A build without ``appliance/vision`` (its crops) has no classifier or focus trainer, and ``tppscan`` must
    still start and say what is missing where it is needed.
    """
    return module.split(".")[0] in ("appliance", "models")
