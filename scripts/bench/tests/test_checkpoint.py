"""The peer's hash-init checkpoint writer (scripts/bench/make_checkpoint.py) against the fixture
specs, and its files loaded strictly by the reference's own model classes (needs the fetched
reference, PEER, and torch)."""
import contextlib
import copy
import hashlib
import io
import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

from support import CHECKPOINT_WRITER, PEER, PEER_MISSING, fixtures_root, load_module, require


def writer():
    require((fixtures_root() / "wav2lip" / "keys.json").is_file(), "needs the fixtures (HEYGEM_FIXTURES)")
    return load_module(CHECKPOINT_WRITER, "make_checkpoint")


def torch_or_skip():
    try:
        import torch
    except ImportError:
        raise unittest.SkipTest("needs torch (Debian: python3-torch; use /usr/bin/python3)")
    return torch


class HashInitTest(unittest.TestCase):
    def test_hash_matches_the_published_vectors(self):
        mc = writer()
        vectors = json.loads((fixtures_root() / "hash_init_vectors.json").read_text())["vectors"]
        for vec in vectors:
            u = mc.hash_uniform(vec["k"], [vec["i"]], vec["seed"])[0]
            self.assertEqual(int(round(u * 2**32)), vec["x"], vec)
            self.assertEqual(u, vec["u"])

    def check_folder(self, folder):
        mc = writer()
        keys = json.loads((fixtures_root() / folder / "keys.json").read_text())
        state = mc.hash_init_state(fixtures_root() / folder)
        self.assertEqual(list(state), [e["name"] for e in keys["entries"]])
        seed = keys["seed"]
        for entry in keys["entries"]:
            values = state[entry["name"]]
            check = entry[f"check_seed{seed}"]
            self.assertEqual(list(values.shape), entry["shape"], entry["name"])
            self.assertEqual(values.dtype.name, entry["dtype"], entry["name"])
            self.assertEqual(hashlib.sha256(values.tobytes()).hexdigest(), check["sha256"], entry["name"])
            flat = values.reshape(-1)
            if "first4_bits_hex" in check and values.dtype.name == "float32":
                bits = [format(int(b), "08x") for b in flat[:4].view("<u4")]
                self.assertEqual(bits, check["first4_bits_hex"], entry["name"])

    def test_wav2lip_entries_match_keys_json(self):
        self.check_folder("wav2lip")

    def test_s3fd_entries_match_keys_json(self):
        self.check_folder("s3fd")

    def test_a_wrong_checksum_is_reported_with_the_entry_name(self):
        mc = writer()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "s3fd"
            folder.mkdir()
            keys = json.loads((fixtures_root() / "s3fd" / "keys.json").read_text())
            broken = copy.deepcopy(keys)
            entry = broken["entries"][3]
            entry[f"check_seed{keys['seed']}"]["sha256"] = "0" * 64
            (folder / "keys.json").write_text(json.dumps(broken))
            shutil.copy(fixtures_root() / "s3fd" / "manifest.json", folder / "manifest.json")
            with self.assertRaisesRegex(mc.SpecError, entry["name"]):
                mc.hash_init_state(folder)


class CheckpointFileTest(unittest.TestCase):
    """Write each checkpoint through main(), read it back as the reference does, load it strictly."""

    @classmethod
    def setUpClass(cls):
        cls.mc = writer()
        cls.torch = torch_or_skip()
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def written(self, model):
        out = Path(self.tmp.name) / f"{model}.pth"
        self.mc.main(["--fixtures", str(fixtures_root()), "--model", model, "--out", str(out)])
        self.assertFalse(out.with_name(out.name + ".partial").exists())
        return self.torch.load(out, map_location="cpu")

    def assert_same_as_spec(self, folder, state):
        keys = json.loads((fixtures_root() / folder / "keys.json").read_text())
        self.assertEqual(list(state), [e["name"] for e in keys["entries"]])
        check = f"check_seed{keys['seed']}"
        for entry in keys["entries"]:
            tensor = state[entry["name"]]
            self.assertEqual(hashlib.sha256(tensor.numpy().tobytes()).hexdigest(), entry[check]["sha256"], entry["name"])

    def test_reference_loads_the_wav2lip_checkpoint_strictly(self):
        require((PEER / "models" / "wav2lip.py").is_file(), PEER_MISSING)
        checkpoint = self.written("wav2lip")
        self.assertEqual(list(checkpoint), ["state_dict"])
        self.assertTrue(all(k.startswith("module.") for k in checkpoint["state_dict"]))
        state = {k.replace("module.", ""): v for k, v in checkpoint["state_dict"].items()}  # inference.py's load_model
        self.assert_same_as_spec("wav2lip", state)
        if str(PEER) not in sys.path:
            sys.path.insert(0, str(PEER))
        from models import Wav2Lip
        model = Wav2Lip()
        model.load_state_dict(state, strict=True)  # same keys and shapes as the reference module
        self.assertEqual(list(state), list(model.state_dict()))

    def test_reference_loads_the_s3fd_checkpoint_strictly(self):
        sfd = PEER / "face_detection" / "detection" / "sfd"
        require((sfd / "net_s3fd.py").is_file(), PEER_MISSING)
        state = self.written("s3fd")
        self.assertFalse(any("module." in k for k in state))  # a plain state dict, as sfd_detector.py reads it
        self.assert_same_as_spec("s3fd", state)
        net_s3fd = load_module(sfd / "net_s3fd.py", "net_s3fd")
        model = net_s3fd.s3fd()
        model.load_state_dict(state, strict=True)
        self.assertEqual(list(state), list(model.state_dict()))

    def test_unknown_model_and_missing_fixtures_are_refused(self):
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):  # argparse's usage
            self.mc.main(["--fixtures", str(fixtures_root()), "--model", "gfpgan", "--out", "/dev/null"])
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(self.mc.SpecError, "keys.json missing"):
                self.mc.main(["--fixtures", tmp, "--model", "s3fd", "--out", str(Path(tmp) / "s.pth")])
            self.assertFalse((Path(tmp) / "s.pth").exists())


if __name__ == "__main__":
    unittest.main()
