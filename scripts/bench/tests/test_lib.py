"""lib.sh: phase outcomes (ok, failed, timeout, skipped), the deadline, and the records' JSON."""
import json
import os
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from support import BENCH_SCRIPTS


def run_phases(script, budget=60, env=None):
    tmp = tempfile.TemporaryDirectory()
    work = Path(tmp.name)
    body = f'source "{BENCH_SCRIPTS / "lib.sh"}"\nBENCH_RESERVE_S=0 bench_init "{work}" "{work}/bench.log" {budget}\n{script}\n'
    proc = subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    phases = {p["phase"]: p for p in map(json.loads, (work / "phases.ndjson").read_text().splitlines())}
    metrics = [json.loads(l) for l in (work / "metrics.ndjson").read_text().splitlines()]
    log = (work / "bench.log").read_text()
    return tmp, proc, phases, metrics, log


class PhaseTest(unittest.TestCase):
    def test_outcomes(self):
        tmp, proc, phases, _, log = run_phases(
            "phase good 10 1 bash -c 'echo fine'\n"
            "phase bad 10 1 bash -c 'echo the cause >&2; exit 3'\n"
            "phase slow 1 1 bash -c 'sleep 30; echo never'\n"
            "phase late 10 1000 true\n"
            "echo \"after: $(phase_status bad)\"")
        with tmp:
            self.assertEqual(phases["good"]["status"], "ok")
            self.assertEqual((phases["bad"]["status"], phases["bad"]["rc"], phases["bad"]["note"]), ("failed", 3, "the cause"))
            self.assertEqual(phases["slow"]["status"], "timeout")
            self.assertLess(phases["slow"]["seconds"], 10)
            self.assertEqual(phases["late"]["status"], "skipped")
            self.assertIn("after: failed", proc.stdout)
            self.assertIn("[good] fine", log)
            self.assertNotIn("never", log)

    def test_background_phase_and_limit_cut_to_the_deadline(self):
        tmp, _, phases, _, _ = run_phases(
            "phase_start bg 30 1 bash -c 'sleep 30'\nphase fg 30 1 true\nphase_wait bg", budget=3)
        with tmp:
            self.assertEqual(phases["fg"]["status"], "ok")
            self.assertEqual(phases["bg"]["status"], "timeout")  # its 30 s limit was cut to the 3 s budget
            self.assertLess(phases["bg"]["seconds"], 10)

    def test_metric_values_and_escaping(self):
        note = 'quote " backslash \\ tab \t newline \n end'
        tmp, _, _, metrics, _ = run_phases('metric a 1.5 s\nmetric b "NVIDIA H200" "" "$NOTE"\nmetric c -2e-3',
                                           env={"NOTE": note})
        with tmp:
            self.assertEqual([m["value"] for m in metrics], [1.5, "NVIDIA H200", -2e-3])
            self.assertEqual(metrics[1]["note"], note)

    def test_terminating_the_runner_ends_running_phases(self):
        with tempfile.TemporaryDirectory() as tmp:
            marker = f"{tmp}/still-running"
            body = (f'source "{BENCH_SCRIPTS / "lib.sh"}"\nbench_init "{tmp}" "{tmp}/bench.log" 60\n'
                    "trap bench_kill_all EXIT\ntrap 'exit 143' TERM\n"
                    f"phase_start long 50 1 bash -c 'sleep 3; touch {marker}'\nphase_wait long\n")
            runner = subprocess.Popen(["bash", "-c", body])
            time.sleep(1.0)
            runner.terminate()
            self.assertEqual(runner.wait(timeout=10), 143)
            time.sleep(3.5)
            self.assertFalse(os.path.exists(marker), "the phase kept running after its runner ended")


if __name__ == "__main__":
    unittest.main()
