"""make-workload.sh (short version): geometry, durations, the mapped box, reproducibility."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from support import BENCH_SCRIPTS, fixtures_root, require, shared_root


def probe(path, entries):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", entries, "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["streams"]


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


class WorkloadTest(unittest.TestCase):
    SECONDS, SHORT = 2, 1

    @classmethod
    def setUpClass(cls):
        require(shutil.which(os.environ.get("FFMPEG", "ffmpeg")) and shutil.which("ffprobe"), "needs ffmpeg and ffprobe")
        require((shared_root() / "media" / "grid").is_dir(), "needs the GRID clips (HEYGEM_SHARED)")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.first, cls.second = Path(cls.tmp.name) / "a", Path(cls.tmp.name) / "b"
        for out in (cls.first, cls.second):
            subprocess.run([str(BENCH_SCRIPTS / "make-workload.sh"), str(out), str(cls.SECONDS), str(cls.SHORT)],
                           check=True, capture_output=True)
        cls.description = json.loads((cls.first / "workload.json").read_text())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_clip_geometry_and_length(self):
        d = self.description
        video, audio = probe(self.first / d["clip"], "stream=codec_type,width,height,nb_read_frames,avg_frame_rate")
        self.assertEqual((video["width"], video["height"]), (d["width"], d["height"]))
        self.assertEqual(int(video["nb_read_frames"]), self.SECONDS * d["fps"])
        self.assertEqual(video["avg_frame_rate"], f"{d['fps']}/1")
        self.assertEqual(audio["codec_type"], "audio")
        short = probe(self.first / d["short_clip"], "stream=codec_type,nb_read_frames")[0]
        self.assertEqual(int(short["nb_read_frames"]), self.SHORT * d["fps"])

    def test_speech_track(self):
        d = self.description
        for name, seconds in ((d["audio"], self.SECONDS), (d["short_audio"], self.SHORT)):
            (stream,) = probe(self.first / name, "stream=codec_name,sample_rate,channels,duration")
            self.assertEqual((stream["codec_name"], stream["sample_rate"], stream["channels"]), ("pcm_s16le", "16000", 1))
            self.assertAlmostEqual(float(stream["duration"]), seconds, places=2)

    def test_box_is_the_fixture_box_mapped_to_720p(self):
        meta = json.loads((fixtures_root() / "wav2lip" / "manifest.json").read_text())["meta"]
        d = self.description
        self.assertEqual(d["clip_order"][0], meta["clip"] + ".mpg")
        top, bottom, left, right = d["box_top_bottom_left_right"]
        src_top, src_bottom, src_left, src_right = meta["box_top_bottom_left_right"]
        scale = d["height"] / 288  # GRID frames are 360x288, scaled to the output height
        pad = (d["width"] - 360 * scale) / 2
        self.assertLessEqual(abs(top - src_top * scale), 1)
        self.assertLessEqual(abs(bottom - src_bottom * scale), 1)
        self.assertLessEqual(abs(left - (src_left * scale + pad)), 1)
        self.assertLessEqual(abs(right - (src_right * scale + pad)), 1)
        self.assertTrue(0 <= top < bottom <= d["height"] and 0 <= left < right <= d["width"])

    def test_reproducible(self):
        self.assertEqual(digest(self.first), digest(self.second))

    def test_bad_arguments_are_refused(self):
        proc = subprocess.run([str(BENCH_SCRIPTS / "make-workload.sh"), str(Path(self.tmp.name) / "c"), "2", "5"],
                              capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("SHORT_SECONDS", proc.stderr)


if __name__ == "__main__":
    unittest.main()
