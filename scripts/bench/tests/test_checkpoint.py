"""The peer's hash-init checkpoint writer (.bench/make_checkpoint.py) against the fixture specs."""
import copy
import hashlib
import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

from support import PEER, PEER_ROOT, fixtures_root, load_module, require


def writer():
    require((PEER_ROOT / "make_checkpoint.py").is_file(), "needs .bench/make_checkpoint.py")
    require((fixtures_root() / "wav2lip" / "keys.json").is_file(), "needs the fixtures (HEYGEM_FIXTURES)")
    return load_module(PEER_ROOT / "make_checkpoint.py", "make_checkpoint")


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
    def test_reference_loads_the_wav2lip_checkpoint_strictly(self):
        mc = writer()
        require((PEER / "models" / "wav2lip.py").is_file(), "needs .bench/wav2lip-ref")
        try:
            import torch
        except ImportError:
            raise unittest.SkipTest("needs torch (use /usr/bin/python3)")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "w.pth"
            mc.main(["--fixtures", str(fixtures_root()), "--model", "wav2lip", "--out", str(out)])
            checkpoint = torch.load(out, map_location="cpu")
        sys.path.insert(0, str(PEER))
        from models import Wav2Lip
        model = Wav2Lip()
        state = {k.replace("module.", ""): v for k, v in checkpoint["state_dict"].items()}  # inference.py's load_model
        self.assertTrue(all(k.startswith("module.") for k in checkpoint["state_dict"]))
        model.load_state_dict(state)  # strict: same keys and shapes as the reference module
        self.assertEqual(list(state), list(model.state_dict()))


if __name__ == "__main__":
    unittest.main()
