#!/usr/bin/env python3
"""Turns a gpu-bench run's records into results.json and results.md (standard library only).

Inputs (in WORK, written by scripts/bench/lib.sh and the phases):
  phases.ndjson    one line per phase: phase, status, rc, start, end, seconds, note
  metrics.ndjson   one line per measurement: key, value, unit, note (a later line wins)
  gpumem.csv       optional: nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits
  workload.json    optional: the workload's description (scripts/bench/make-workload.sh)
  info.json        optional: device, commit, date, versions
Derived values (ratios against the goals of issue 7) are computed here, so every run is judged the
same way; a value whose inputs are missing is reported as missing together with the phases that
produce them and their status.

Usage: write_results.py WORK OUT_DIR
"""
import datetime
import json
import sys
import time
from pathlib import Path


class RecordError(ValueError):
    pass


# name, numerator, denominator, goal (op, bound) or None, what it means, phases whose failure explains a gap
RATIOS = [
    ("heygem_box_over_floor", "heygem_box_wall_s", "floor_wall_s", ("<=", 1.25),
     "(b)/(a) heygem end to end, fixed box, over the plain re-encode", ["floor", "heygem-box"]),
    ("heygem_retinaface_over_floor", "heygem_retinaface_wall_s", "floor_wall_s", None,
     "(b)/(a) heygem end to end with RetinaFace, over the plain re-encode", ["floor", "heygem-retinaface"]),
    ("reference_box_over_heygem_box", "ref_box_wall_s", "heygem_box_wall_s", (">=", 3.0),
     "(f) reference end to end (fixed box, with its mux) over heygem's", ["reference-box", "heygem-box"]),
    ("reference_box_nomux_over_heygem_box", "ref_box_nomux_wall_s", "heygem_box_wall_s", None,
     "(f) the same without the reference's final ffmpeg mux", ["reference-box", "heygem-box"]),
    ("reference_detect_over_heygem_retinaface", "ref_detect_estimate_wall_s", "heygem_retinaface_wall_s", (">=", 10.0),
     "(g) reference with S3FD on every frame (lower bound, see note) over heygem with RetinaFace",
     ["reference-box", "reference-s3fd-forward", "heygem-retinaface"]),
    ("reference_detect_over_heygem_s3fd", "ref_detect_estimate_wall_s", "heygem_s3fd_wall_s", (">=", 10.0),
     "(g) reference with S3FD on every frame (lower bound) over heygem with S3FD",
     ["reference-box", "reference-s3fd-forward", "heygem-s3fd"]),
    ("s3fd_forward_heygem_over_reference", "heygem_s3fd_forward_fps", "ref_s3fd_forward_fps", None,
     "(g) S3FD network forward throughput, heygem over the reference, same 720p frames", ["heygem-bench", "reference-s3fd-forward"]),
    ("retinaface_cached_over_retinaface", "heygem_retinaface_cached_wall_s", "heygem_retinaface_wall_s", None,
     "avatar cache: the RetinaFace job again, its faces from the cache (no detection), over detecting",
     ["heygem-retinaface", "heygem-retinaface-cached"]),
    ("tenth_over_first_job", "job10_wall_s", "job1_wall_s", None,
     "(d) latency of the tenth short job over the first", ["heygem-latency"]),
]


def read_ndjson(path):
    rows = []
    if not path.exists():
        return rows
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise RecordError(f"{path}: line {number}: not JSON ({error.msg})") from None
    return rows


def read_json(path):
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecordError(f"{path}: not JSON ({error.msg})") from None


def read_gpu_memory(path):
    """[(epoch seconds, MiB)] from nvidia-smi's "YYYY/MM/DD HH:MM:SS.mmm, N" lines (local time)."""
    samples = []
    if not path.exists():
        return samples
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[1].isdigit():
            continue  # a header, a partial last line, or "[N/A]"
        try:
            stamp = datetime.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f")
        except ValueError:
            continue
        samples.append((time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6, int(parts[1])))
    return samples


def add_derived_metrics(metrics, workload):
    """Values computed from other metrics (kept with the measured ones, marked derived)."""
    def value(key):
        entry = metrics.get(key)
        return entry["value"] if entry and isinstance(entry.get("value"), (int, float)) else None

    box, mux = value("ref_box_wall_s"), value("ref_box_mux_s")
    if box is not None and mux is not None and "ref_box_nomux_wall_s" not in metrics:
        metrics["ref_box_nomux_wall_s"] = {"value": round(box - mux, 3), "unit": "s",
                                           "note": "derived: ref_box_wall_s - ref_box_mux_s"}
    frames = value("ref_box_frames") or (workload or {}).get("frames")
    forward_fps = value("ref_s3fd_forward_fps")
    if box is not None and frames and forward_fps:
        metrics["ref_detect_estimate_wall_s"] = {
            "value": round(box + frames / forward_fps, 3), "unit": "s",
            "note": "derived lower bound: reference fixed-box wall + frames / its S3FD forward fps "
                    "(counts no detection post-processing, upload or box smoothing)"}


def ratio_rows(metrics, phases):
    status = {p["phase"]: p["status"] for p in phases}
    rows = []
    for name, num_key, den_key, goal, meaning, producers in RATIOS:
        num, den = metrics.get(num_key, {}).get("value"), metrics.get(den_key, {}).get("value")
        row = {"name": name, "meaning": meaning, "numerator": num_key, "denominator": den_key,
               "goal": f"{goal[0]} {goal[1]}" if goal else None, "value": None, "met": None}
        if isinstance(num, (int, float)) and isinstance(den, (int, float)) and den > 0:
            row["value"] = round(num / den, 3)
            if goal:
                row["met"] = row["value"] <= goal[1] if goal[0] == "<=" else row["value"] >= goal[1]
        else:
            gaps = [f"{p}: {status.get(p, 'not run')}" for p in producers if status.get(p) != "ok"]
            row["missing"] = "; ".join(gaps) or f"{num_key} or {den_key} not measured"
        rows.append(row)
    return rows


def memory_summary(samples, phases):
    if not samples:
        return None
    summary = {"samples": len(samples), "peak_mib": max(m for _, m in samples), "phases": {}}
    for p in phases:
        if p.get("status") == "skipped":
            continue
        window = [m for t, m in samples if p["start"] <= t <= p["end"]]
        if window:
            summary["phases"][p["phase"]] = {"min_mib": min(window), "peak_mib": max(window)}
    return summary


def fmt(value):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(result):
    info = result.get("info") or {}
    lines = [f"# heygem GPU benchmark — {info.get('device', 'unknown device')}", ""]
    lines += [f"- {k}: {cell(v)}" for k, v in info.items()]
    workload = result.get("workload")
    if workload:
        lines.append(f"- workload: {workload.get('seconds')} s {workload.get('width')}x{workload.get('height')}"
                     f"@{workload.get('fps')}, box (t,b,l,r) {workload.get('box_top_bottom_left_right')}")
    lines += ["", "## Goals and ratios", "", "| ratio | value | goal | met | meaning |", "|---|---|---|---|---|"]
    for row in result["ratios"]:
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        value = fmt(row["value"]) if row["value"] is not None else f"missing ({cell(row.get('missing', ''))})"
        lines.append(f"| {row['name']} | {value} | {row['goal'] or '—'} | {met} | {cell(row['meaning'])} |")
    lines += ["", "## Measurements", "", "| key | value | unit | note |", "|---|---|---|---|"]
    for key, entry in result["metrics"].items():
        lines.append(f"| {key} | {cell(fmt(entry.get('value')))} | {entry.get('unit', '')} | {cell(entry.get('note', ''))} |")
    memory = result.get("gpu_memory")
    if memory:
        lines += ["", f"## GPU memory (nvidia-smi, {memory['samples']} samples, peak {memory['peak_mib']} MiB)", "",
                  "| phase | min MiB | peak MiB |", "|---|---|---|"]
        lines += [f"| {name} | {m['min_mib']} | {m['peak_mib']} |" for name, m in memory["phases"].items()]
    lines += ["", "## Phases", "", "| phase | status | seconds | note |", "|---|---|---|---|"]
    for p in result["phases"]:
        lines.append(f"| {p['phase']} | {p['status']} | {fmt(p['seconds'])} | {cell(p.get('note', ''))} |")
    return "\n".join(lines) + "\n"


def build_result(work):
    phases = read_ndjson(work / "phases.ndjson")
    metrics = {}
    for row in read_ndjson(work / "metrics.ndjson"):
        if "key" not in row or "value" not in row:
            raise RecordError(f"{work / 'metrics.ndjson'}: a line without key/value: {row}")
        metrics[row["key"]] = {k: row.get(k, "") for k in ("value", "unit", "note")}
    workload = read_json(work / "workload.json")
    add_derived_metrics(metrics, workload)
    return {
        "info": read_json(work / "info.json") or {},
        "workload": workload,
        "ratios": ratio_rows(metrics, phases),
        "metrics": metrics,
        "gpu_memory": memory_summary(read_gpu_memory(work / "gpumem.csv"), phases),
        "phases": phases,
    }


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    work, out = Path(argv[1]), Path(argv[2])
    result = build_result(work)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except RecordError as error:
        print(f"write_results: {error}", file=sys.stderr)
        sys.exit(1)
