#!/usr/bin/env python3
"""Reads the output of one benchmark step and appends its numbers to metrics.ndjson (stdlib only).

  record.py METRICS job-events EVENTS PREFIX   heygemctl --json NDJSON: the done event's frames, fps,
                                               wall time (and per-stage numbers when it carries them)
  record.py METRICS bench-json OUTPUT PREFIX   heygem-bench --json: its last JSON object (stages, fps)
  record.py METRICS ctest OUTPUT PREFIX        ctest's summary line: tests run and failed
  record.py METRICS json OUTPUT PREFIX         a helper's last JSON object: every numeric top-level key
Exits 1 (with the reason on stderr) when the expected record is not in the output.
"""
import json
import re
import sys
from pathlib import Path


class MissingRecord(ValueError):
    pass


def json_objects(text):
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def find_done(node):
    """The dict of a 'done' event anywhere in one NDJSON message, else None."""
    if isinstance(node, dict):
        if "done" in (node.get("event"), node.get("name"), node.get("kind"), node.get("type")) and (
                "wall_s" in node or "frames" in node):
            return node
        for value in node.values():
            found = find_done(value)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = find_done(value)
            if found is not None:
                return found
    return None


def stage_metrics(stages, prefix):
    """[(key, value, unit)] from a list of {name, fps | frames and busy_seconds}."""
    rows = []
    for stage in stages or []:
        name = re.sub(r"[^a-z0-9]+", "_", str(stage.get("name", "")).lower()).strip("_")
        if not name:
            continue
        fps = stage.get("fps")
        if fps is None and stage.get("busy_seconds"):
            fps = stage.get("frames", 0) / stage["busy_seconds"]
        if isinstance(fps, (int, float)):
            rows.append((f"{prefix}_stage_{name}_fps", round(fps, 2), "fps"))
        if isinstance(stage.get("busy_seconds"), (int, float)):
            rows.append((f"{prefix}_stage_{name}_busy_s", round(stage["busy_seconds"], 3), "s"))
    return rows


def job_events(text, prefix):
    done = None
    for message in json_objects(text):
        done = find_done(message) or done
    if done is None:
        raise MissingRecord("no done event in the heygemctl --json output")
    rows = []
    for key, unit in (("frames", "frames"), ("frames_without_face", "frames"), ("wall_s", "s"), ("fps", "fps")):
        if isinstance(done.get(key), (int, float)):
            rows.append((f"{prefix}_reported_{key}", done[key], unit))
    return rows + stage_metrics(done.get("stages"), prefix)


def last_object(text, what):
    objects = list(json_objects(text))
    if not objects:
        raise MissingRecord(f"no JSON object in the {what} output")
    return objects[-1]


def bench_json(text, prefix):
    report = last_object(text, "heygem-bench")
    rows = [(f"{prefix}_{k}", v, "") for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    rows += stage_metrics(report.get("stages"), prefix)
    if not rows:
        raise MissingRecord("the heygem-bench JSON has no numbers")
    return rows


def plain_json(text, prefix):
    report = last_object(text, "helper")
    return [(f"{prefix}_{k}", v, "") for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def ctest_summary(text, prefix):
    match = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    if not match:
        if re.search(r"No tests were found", text):
            return [(f"{prefix}_total", 0, "tests"), (f"{prefix}_failed", 0, "tests")]
        raise MissingRecord("no ctest summary line in the output")
    failed, total = int(match.group(2)), int(match.group(3))
    rows = [(f"{prefix}_total", total, "tests"), (f"{prefix}_failed", failed, "tests")]
    failures = re.findall(r"^\s*\d+ - (\S+) \((Failed|Timeout|SEGFAULT|Subprocess aborted|Not Run|Exception)\)",
                          text, re.MULTILINE)
    if failures:
        names = ", ".join(f"{name} ({why})" for name, why in failures[:20])
        rows.append((f"{prefix}_failures", names, ""))
    return rows


COMMANDS = {"job-events": job_events, "bench-json": bench_json, "ctest": ctest_summary, "json": plain_json}


def main(argv):
    if len(argv) != 5 or argv[2] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    metrics, command, source, prefix = Path(argv[1]), argv[2], Path(argv[3]), argv[4]
    try:
        rows = COMMANDS[command](source.read_text(errors="replace"), prefix)
    except (OSError, MissingRecord) as error:
        print(f"record.py {command}: {source}: {error}", file=sys.stderr)
        return 1
    with metrics.open("a") as out:
        for key, value, unit in rows:
            out.write(json.dumps({"key": key, "value": value, "unit": unit, "note": f"from {source.name}"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
