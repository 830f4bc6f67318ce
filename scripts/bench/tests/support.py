"""Paths shared by the bench self-tests: repo, fixtures (HEYGEM_FIXTURES), the ignored .bench folder."""
import json
import os
import unittest
from pathlib import Path

import importlib.util

REPO = Path(__file__).resolve().parents[3]
BENCH_SCRIPTS = REPO / "scripts" / "bench"
PEER_ROOT = REPO / ".bench"          # peer code, shim and checkpoint writer: ignored, not committed
PEER = PEER_ROOT / "wav2lip-ref"
SHIM = PEER_ROOT / "shim"


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
