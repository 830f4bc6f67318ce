"""Paths shared by the bench self-tests: repo, fixtures (HEYGEM_FIXTURES), the committed shim and
checkpoint writer, and the fetched reference (PEER, default .bench/wav2lip-ref: ignored, never committed)."""
import json
import os
import unittest
from pathlib import Path

import importlib.util

REPO = Path(__file__).resolve().parents[3]
BENCH_SCRIPTS = REPO / "scripts" / "bench"
SHIM = BENCH_SCRIPTS / "shim"
CHECKPOINT_WRITER = BENCH_SCRIPTS / "make_checkpoint.py"
PEER = Path(os.environ.get("PEER") or REPO / ".bench" / "wav2lip-ref")  # scripts/bench/fetch-reference.sh
PEER_MISSING = f"needs the reference at {PEER} (scripts/bench/fetch-reference.sh, or set PEER)"


def shared_root():
    if os.environ.get("HEYGEM_SHARED"):
        return Path(os.environ["HEYGEM_SHARED"])
    return REPO.parent / "shared"


def fixtures_root():
    if os.environ.get("HEYGEM_FIXTURES"):
        return Path(os.environ["HEYGEM_FIXTURES"])
    return shared_root() / "fixtures"


def load_fixture(folder, name):
    """A raw fixture tensor, shaped by the folder's manifest."""
    import numpy as np
    manifest = json.loads((fixtures_root() / folder / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e.get("file", e.get("name")) == name)
    dtype = {"float32": "<f4", "int64": "<i8"}[entry["dtype"]]
    return np.fromfile(fixtures_root() / folder / name, dtype=dtype).reshape(entry["shape"])


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(condition, why):
    if not condition:
        raise unittest.SkipTest(why)
