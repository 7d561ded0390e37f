"""`moss-lab export-labels`: the stored preference labels, ready for trl's trainers.

    moss-lab export-labels --out exported                  # the app's label store
    moss-lab export-labels --out exported --include-ties   # ties too, with a tie column
    moss-lab export-labels --out exported --labels class.sqlite

The folder gets two copies of the same records, in trl's standard preference form
(prompt / chosen / rejected):

    a `datasets` dataset (save_to_disk)   datasets.load_from_disk("exported"): what
                                          examples/trl/reward.py and dpo.py read
    labels.jsonl                          one record per line, with our own fields
                                          (tie, annotator, source, created_at, ...)

Only A/B votes are exported (chosen = the response voted better); ties only with
--include-ties, then marked tie=True (chosen/rejected order means nothing: trl's trainers
do not know ties, drop them or use a tie-aware loss); "both bad" and skips never. The
folder is written whole or not at all; an existing export there is replaced, any other
non-empty folder is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..configs import parse_args

JSONL_NAME = "labels.jsonl"


@dataclass
class ExportLabels:
    """Write the stored preference labels as a datasets folder + labels.jsonl for trl."""

    out: Path
    """The folder to write (datasets.load_from_disk reads it; labels.jsonl inside)."""
    include_ties: bool = False
    """Export ties too, with a `tie` column (True on ties). trl's trainers know no ties
    (they would read one as a win): examples/trl drops them."""
    labels: Path | None = None
    """The label store (.sqlite) to read (default: the app's, <data home>/labels.sqlite)."""


def is_previous_export(folder: Path) -> bool:
    return (folder / JSONL_NAME).is_file() and (folder / "state.json").is_file()


def export_labels(out: Path, include_ties: bool = False, labels: Path | None = None) -> dict:
    """Write `out` (see the module doc); return {"pairs", "ties", "out"}. ValueError (nothing
    written) for a missing store, a store with nothing to export, or an occupied folder."""
    from datasets import Dataset
    from datasets.utils import logging as datasets_logging

    from .. import files
    from ..labels import LabelStore
    from ..paths import labels_db
    from ..preferences import write_jsonl

    db = Path(labels).expanduser() if labels is not None else labels_db()
    if not db.is_file():  # LabelStore would create an empty one
        raise ValueError(f"label store {db} not found: label pairs in the app's Label tab, "
                         "or give --labels with the path of a .sqlite label store")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_previous_export(out))):
        raise ValueError(f"{out} exists and is not an earlier export: give --out a new or "
                         "empty folder")
    store = LabelStore(db)
    try:
        prefs = store.preferences(include_ties=include_ties)
        counts = store.progress()["by_choice"]
    finally:
        store.close()
    if not prefs:
        raise ValueError(f"nothing to export from {db}: it holds {counts['A'] + counts['B']} A/B "
                         f"votes and {counts['tie']} ties (both-bad and skipped votes are never "
                         "exported). Vote A or B in the app's Label tab"
                         + ("" if include_ties else ", or add --include-ties"))
    columns = {key: [getattr(p, key) for p in prefs] for key in ("prompt", "chosen", "rejected")}
    if include_ties:
        columns["tie"] = [p.tie for p in prefs]
    bars = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()  # no 'Saving the dataset' bar for a few rows
    try:
        with files.building(out) as tmp:  # the folder appears complete, or not at all
            Dataset.from_dict(columns).save_to_disk(str(tmp))
            write_jsonl(prefs, tmp / JSONL_NAME)  # the format of LabelStore.export_jsonl
    finally:
        if bars:
            datasets_logging.enable_progress_bar()
    ties = sum(p.tie for p in prefs)
    return {"pairs": len(prefs) - ties, "ties": ties, "out": str(out)}


def main(argv: list[str]) -> int:
    options = parse_args(ExportLabels, argv, prog="moss-lab export-labels")
    result = export_labels(options.out, options.include_ties, options.labels)
    ties = f" and {result['ties']} ties" if options.include_ties else ""
    print(f"wrote {result['pairs']} preference pairs{ties} to {result['out']}: "
          f"datasets.load_from_disk({result['out']!r}), and {JSONL_NAME} inside. "
          "Train with trl: examples/trl/README.md")
    return 0
