#!/usr/bin/env python3
"""Times the reference S3FD network forward (Wav2Lip's face_detection/detection/sfd/net_s3fd.py) on
batches of the workload's frames, the way its batch_detect feeds it (RGB, minus [104, 117, 123],
NCHW float32), with cudnn.benchmark on as the reference sets it. Only the forward is timed (device
synchronised around it); the input is uploaded beforehand. Prints one JSON object.

Usage: ref_s3fd_forward.py --peer WAV2LIP_DIR --weights s3fd.pth --clip clip.mp4
                           [--frames 64] [--batch 16] [--repeats 3] [--device cuda]
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def read_frames(clip, count):
    import cv2
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        raise SystemExit(f"{clip}: no frames could be read")
    return np.stack(frames)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="the reference's --face_det_batch_size default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)

    import torch
    sys.path.insert(0, str(args.peer / "face_detection" / "detection" / "sfd"))
    from net_s3fd import s3fd  # the reference network, unmodified

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    net = s3fd()
    net.load_state_dict(torch.load(args.weights, map_location="cpu"))
    net.to(device).eval()

    frames = read_frames(args.clip, args.frames)
    images = frames[..., ::-1] - np.array([104, 117, 123])  # get_detections_for_batch + batch_detect
    batches = [torch.from_numpy(images[i:i + args.batch].transpose(0, 3, 1, 2).copy()).float().to(device)
               for i in range(0, len(images) - args.batch + 1, args.batch)]
    if not batches:
        raise SystemExit(f"{args.clip}: {len(images)} frames, fewer than one batch of {args.batch}")

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.no_grad():
        for batch in batches[:2]:  # warm-up: cudnn autotuning, allocator
            net(batch)
        synchronize()
        times = []
        for _ in range(args.repeats):
            for batch in batches:
                start = time.perf_counter()
                net(batch)
                synchronize()
                times.append(time.perf_counter() - start)
    per_batch = statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0
    print(json.dumps({
        "forward_fps": round(args.batch / per_batch, 2),
        "forward_ms_per_batch": round(per_batch * 1e3, 3),
        "batch": args.batch, "batches_timed": len(times),
        "height": int(frames.shape[1]), "width": int(frames.shape[2]),
        "torch_peak_allocated_mib": round(peak, 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
