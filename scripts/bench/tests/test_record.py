"""record.py: done events of heygemctl --json, heygem-bench JSON and ctest summaries."""
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from support import BENCH_SCRIPTS


def run(command, text, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        source, metrics = Path(tmp) / "source.txt", Path(tmp) / "metrics.ndjson"
        source.write_text(text)
        proc = subprocess.run([sys.executable, str(BENCH_SCRIPTS / "record.py"), str(metrics), command, str(source), prefix],
                              capture_output=True, text=True)
        rows = [json.loads(l) for l in metrics.read_text().splitlines()] if metrics.exists() else []
    return proc, {r["key"]: r["value"] for r in rows}


class RecordTest(unittest.TestCase):
    def test_done_event_of_a_job(self):
        done = {"type": "event", "job_id": "0123456789ab", "event": "done", "outputs": ["fd"], "frames": 1500,
                "frames_without_face": 3, "wall_s": 9.5, "fps": 157.9}
        lines = [{"type": "event", "job_id": "0123456789ab", "event": "running", "fps": 12.0, "frames_done": 10},
                 {"type": "event", "job_id": "0123456789ab", "event": "item_done", "frames": 1500, "wall_s": 9.4}, done]
        proc, values = run("job-events", "\n".join(json.dumps(l) for l in lines) + "\n", "heygem_box")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(values["heygem_box_reported_frames"], done["frames"])
        self.assertEqual(values["heygem_box_reported_wall_s"], done["wall_s"])
        self.assertEqual(values["heygem_box_reported_frames_without_face"], done["frames_without_face"])

    def test_no_done_event_fails(self):
        proc, values = run("job-events", json.dumps({"type": "event", "event": "failed", "cause": "x"}) + "\n", "j")
        self.assertEqual(proc.returncode, 1)
        self.assertIn("no done event", proc.stderr)
        self.assertEqual(values, {})

    def test_stage_throughput_from_bench_json(self):
        report = {"frames": 1500, "wall_s": 10.0, "stages": [
            {"name": "decode", "busy_seconds": 2.5, "frames": 1500}, {"name": "generate", "fps": 640.5}]}
        proc, values = run("bench-json", "log line\n" + json.dumps(report) + "\n", "hb")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(values["hb_stage_decode_fps"], round(1500 / 2.5, 2))
        self.assertEqual(values["hb_stage_generate_fps"], 640.5)
        self.assertEqual(values["hb_frames"], 1500)

    def test_ctest_summary(self):
        text = ("The following tests FAILED:\n\t  7 - parity.Wav2Lip.Cuda (Failed)\n"
                "90% tests passed, 1 tests failed out of 10\n")
        proc, values = run("ctest", text, "parity_tests")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(values["parity_tests_total"], 10)
        self.assertEqual(values["parity_tests_failed"], 1)
        self.assertIn("parity.Wav2Lip.Cuda (Failed)", values["parity_tests_failures"])


if __name__ == "__main__":
    unittest.main()
