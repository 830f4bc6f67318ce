"""write_results.py: ratios, goals, gaps, GPU memory windows and the markdown table."""
import json
import tempfile
import time
import unittest
from pathlib import Path

from support import BENCH_SCRIPTS, load_module

wr = load_module(BENCH_SCRIPTS / "write_results.py", "write_results")


def write_records(work, phases, metrics, gpumem=None, workload=None):
    (work / "phases.ndjson").write_text("".join(json.dumps(p) + "\n" for p in phases))
    (work / "metrics.ndjson").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if gpumem is not None:
        (work / "gpumem.csv").write_text(gpumem)
    if workload is not None:
        (work / "workload.json").write_text(json.dumps(workload))


def phase(name, status, start, end):
    return {"phase": name, "status": status, "rc": 0 if status == "ok" else 1, "start": start, "end": end,
            "seconds": end - start, "note": ""}


def metric(key, value, unit="s"):
    return {"key": key, "value": value, "unit": unit, "note": ""}


def stamp(epoch):
    local = time.localtime(epoch)
    return time.strftime("%Y/%m/%d %H:%M:%S", local) + f".{int(round((epoch % 1) * 1000)):03d}"


class WriteResultsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.work = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def ratio(self, result, name):
        return next(r for r in result["ratios"] if r["name"] == name)

    def test_ratios_goals_and_derived_values(self):
        floor, box, ref, mux, frames, fwd = 8.4, 9.1, 41.0, 6.5, 1500, 220.0
        write_records(self.work,
                      [phase(p, "ok", 0, 1) for p in ("floor", "heygem-box", "reference-box", "reference-s3fd-forward")],
                      [metric("floor_wall_s", floor), metric("heygem_box_wall_s", box), metric("ref_box_wall_s", ref),
                       metric("ref_box_mux_s", mux), metric("ref_box_frames", frames, "frames"),
                       metric("ref_s3fd_forward_fps", fwd, "fps"), metric("heygem_retinaface_wall_s", 10.0)])
        result = wr.build_result(self.work)
        over_floor = self.ratio(result, "heygem_box_over_floor")
        self.assertAlmostEqual(over_floor["value"], round(box / floor, 3))
        self.assertIs(over_floor["met"], box / floor <= 1.25)
        speedup = self.ratio(result, "reference_box_over_heygem_box")
        self.assertAlmostEqual(speedup["value"], round(ref / box, 3))
        self.assertIs(speedup["met"], ref / box >= 3.0)
        self.assertAlmostEqual(result["metrics"]["ref_box_nomux_wall_s"]["value"], round(ref - mux, 3))
        estimate = result["metrics"]["ref_detect_estimate_wall_s"]["value"]
        self.assertAlmostEqual(estimate, round(ref + frames / fwd, 3))
        detect = self.ratio(result, "reference_detect_over_heygem_retinaface")
        self.assertAlmostEqual(detect["value"], round(estimate / 10.0, 3))

    def test_a_missing_value_names_the_failed_phase(self):
        write_records(self.work, [phase("floor", "ok", 0, 1), phase("heygem-box", "failed", 1, 2)],
                      [metric("floor_wall_s", 8.0)])
        row = self.ratio(wr.build_result(self.work), "heygem_box_over_floor")
        self.assertIsNone(row["value"])
        self.assertIsNone(row["met"])
        self.assertIn("heygem-box: failed", row["missing"])
        self.assertNotIn("floor", row["missing"])

    def test_gpu_memory_peaks_per_phase_window(self):
        t0 = time.time()
        samples = [(t0 + 0.0, 500), (t0 + 1.0, 900), (t0 + 2.0, 4000), (t0 + 3.0, 3500), (t0 + 4.0, 600)]
        csv = "".join(f"{stamp(t)}, {m}\n" for t, m in samples) + "garbage line\n"
        write_records(self.work, [phase("a", "ok", t0 + 0.5, t0 + 1.5), phase("b", "ok", t0 + 1.5, t0 + 3.5)], [], csv)
        memory = wr.build_result(self.work)["gpu_memory"]
        self.assertEqual(memory["samples"], len(samples))
        self.assertEqual(memory["peak_mib"], max(m for _, m in samples))
        self.assertEqual(memory["phases"]["a"], {"min_mib": 900, "peak_mib": 900})
        self.assertEqual(memory["phases"]["b"], {"min_mib": 3500, "peak_mib": 4000})

    def test_files_written_and_markdown_rows(self):
        write_records(self.work, [phase("floor", "ok", 0, 1)], [metric("floor_wall_s", 8.25)],
                      workload={"seconds": 60, "width": 1280, "height": 720, "fps": 25, "frames": 1500,
                                "box_top_bottom_left_right": [1, 2, 3, 4]})
        (self.work / "info.json").write_text(json.dumps({"device": "Test GPU"}))
        out = self.work / "out"
        self.assertEqual(wr.main(["write_results.py", str(self.work), str(out)]), 0)
        text = (out / "results.md").read_text()
        self.assertIn("# heygem GPU benchmark — Test GPU", text)
        self.assertIn("| floor_wall_s | 8.25 | s |", text)
        self.assertIn("| floor | ok |", text)
        self.assertEqual(json.loads((out / "results.json").read_text())["metrics"]["floor_wall_s"]["value"], 8.25)

    def test_a_malformed_record_names_file_and_line(self):
        (self.work / "phases.ndjson").write_text("")
        (self.work / "metrics.ndjson").write_text(json.dumps(metric("x", 1)) + "\n{not json\n")
        with self.assertRaisesRegex(wr.RecordError, r"metrics.ndjson: line 2"):
            wr.build_result(self.work)


if __name__ == "__main__":
    unittest.main()
