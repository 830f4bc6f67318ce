#!/usr/bin/env python3
"""Writes a hash-init checkpoint for the reference peer (docs/bench.md), built from the spec in the
fixtures' README ("Deterministic weights"): entry order, seed, shapes and checks from the model
folder's keys.json, per-entry gains from its manifest.json meta.gain_log2. Every entry's sha256 is
checked against keys.json before anything is written.

  wav2lip: {"state_dict": {"module." + name: tensor}}   (what inference.py's load_model reads)
  s3fd:    {name: tensor}                                (what the peer's sfd_detector.py reads)

Usage: make_checkpoint.py --fixtures FIXTURES_DIR --model wav2lip|s3fd --out FILE
"""
import argparse
import collections
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

MASK = np.uint64(0xFFFFFFFF)
# Rule 6 of the spec: S3FD's L2Norm scales.
L2NORM_SCALES = {"conv3_3_norm.weight", "conv4_3_norm.weight", "conv5_3_norm.weight"}


class SpecError(Exception):
    """The fixture spec is missing, inconsistent, or does not match what was generated."""


def hash_uniform(k, indices, seed):
    """u = x / 2^32 (float64) for entry index k, flat element indices, seed: the spec's integer hash,
    in uint64 with explicit masking to stay mod 2^32."""
    i = np.asarray(indices, dtype=np.uint64)
    x = (i * np.uint64(0x9E3779B1) + np.uint64(((k + 1) * 0x85EBCA77 + seed * 0xC2B2AE3D) & 0xFFFFFFFF)) & MASK
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & MASK
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & MASK
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 2.0**32


def rule_for(name, shape, names):
    """The spec's rule number (1-8) for an entry; `names` is the set of all entry names."""
    prefix = name[:name.rfind(".") + 1]
    batchnorm = prefix + "running_var" in names
    if name.endswith("num_batches_tracked"):
        return 1
    if name.endswith("running_mean"):
        return 2
    if name.endswith("running_var"):
        return 3
    if name.endswith(".weight") and batchnorm:
        return 4
    if name.endswith(".bias") and batchnorm:
        return 5
    if name in L2NORM_SCALES:
        return 6
    if len(shape) >= 2:
        return 7
    return 8


def entry_values(k, name, shape, rule, seed, gain_log2):
    """The float32 (int64 for rule 1) tensor of entry k, computed in float64 then rounded once."""
    if rule == 1:
        return np.zeros(shape, dtype=np.int64)
    count = int(np.prod(shape, dtype=np.int64))  # 0-dim: one element
    u = hash_uniform(k, np.arange(count, dtype=np.uint64), seed)
    v = 2.0 * u - 1.0
    if rule in (2, 5, 8):
        values = 0.1 * v
    elif rule == 3:
        values = 0.5 + u
    elif rule == 4:
        values = 1.0 + 0.1 * v
    elif rule == 6:
        values = 5.0 + v
    elif rule == 7:
        values = v * np.sqrt(6.0 / (count / shape[0]))  # fan_in = numel / shape[0], also for ConvTranspose2d
    else:
        raise SpecError(f"{name}: no rule {rule}")
    if gain_log2:
        values = values * 2.0**gain_log2  # exact in float64
    return values.astype(np.float32).reshape(shape)


def read_spec(folder):
    folder = Path(folder)
    try:
        keys = json.loads((folder / "keys.json").read_text())
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError as error:
        raise SpecError(f"{folder}: {error.filename} missing (is this a fixtures model folder?)") from None
    for field in ("seed", "entries"):
        if field not in keys:
            raise SpecError(f"{folder}/keys.json: no '{field}'")
    gains = manifest.get("meta", {}).get("gain_log2", {})
    names = [entry["name"] for entry in keys["entries"]]
    unknown = sorted(set(gains) - set(names))
    if unknown:
        raise SpecError(f"{folder}/manifest.json: meta.gain_log2 names entries not in keys.json: {unknown}")
    return keys, gains


def hash_init_state(folder):
    """OrderedDict name -> numpy array for the model folder, in keys.json order, each checked
    against keys.json (index, rule, gain, shape, dtype, sha256); SpecError names the first entry
    that does not match."""
    keys, gains = read_spec(folder)
    seed = keys["seed"]
    check_key = f"check_seed{seed}"
    names = {entry["name"] for entry in keys["entries"]}
    state = collections.OrderedDict()
    for k, entry in enumerate(keys["entries"]):
        name, shape = entry["name"], tuple(entry["shape"])
        where = f"{folder}/keys.json entry {k} ({name})"
        if entry.get("index", k) != k:
            raise SpecError(f"{where}: index {entry['index']}, expected {k} (entries out of order)")
        rule = rule_for(name, shape, names)
        if "rule" in entry and entry["rule"] != rule:
            raise SpecError(f"{where}: the spec gives rule {rule}, keys.json says {entry['rule']}")
        gain = gains.get(name, 0)
        if entry.get("gain_log2", gain) != gain:
            raise SpecError(f"{where}: gain 2^{entry['gain_log2']} in keys.json, 2^{gain} in manifest.json")
        values = entry_values(k, name, shape, rule, seed, gain)
        if values.dtype.name != entry["dtype"]:
            raise SpecError(f"{where}: generated {values.dtype.name}, keys.json says {entry['dtype']}")
        expected = entry.get(check_key, {}).get("sha256")
        if expected is None:
            raise SpecError(f"{where}: no {check_key}.sha256 to check against")
        actual = hashlib.sha256(values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()
        if actual != expected:
            raise SpecError(f"{where}: sha256 {actual} differs from keys.json's {expected}")
        state[name] = values
    if "count" in keys and keys["count"] != len(state):
        raise SpecError(f"{folder}/keys.json: count {keys['count']}, but {len(state)} entries")
    return state


def checkpoint_object(model, state):
    import torch
    tensors = collections.OrderedDict((name, torch.from_numpy(values)) for name, values in state.items())
    if model == "wav2lip":
        return {"state_dict": collections.OrderedDict(("module." + name, t) for name, t in tensors.items())}
    return tensors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, required=True, help="the shared fixtures folder (holds wav2lip/, s3fd/)")
    parser.add_argument("--model", choices=("wav2lip", "s3fd"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("make_checkpoint: needs torch to write the checkpoint (Debian: python3-torch)")
    state = hash_init_state(args.fixtures / args.model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".partial")  # never leave a half-written checkpoint
    torch.save(checkpoint_object(args.model, state), partial)
    os.replace(partial, args.out)
    values = sum(v.size for v in state.values())
    print(f"make_checkpoint: {args.out}: {args.model}, {len(state)} entries, {values} values, all sha256 as keys.json")


if __name__ == "__main__":
    try:
        main()
    except SpecError as error:
        sys.exit(f"make_checkpoint: {error}")
