#!/usr/bin/env python3
"""Enqueue a heygem cluster job from Python (redis-py), as a web backend would: no heygemctl.

    cluster-producer.py URL AUDIO VIDEO OUTPUT [OPTIONS_JSON]
    cluster-producer.py redis://127.0.0.1:6379 /srv/media/speech.wav /srv/media/face.mp4 /srv/media/out/face.mp4

OPTIONS_JSON: the job's options (docs/protocol.md), default '{"crf": 23}'.
Prints the job id; follow it with `heygemctl --cluster URL watch ID` or read its events stream.
The wire format is docs/cluster.md's; the script is the same as heygemctl's submit.
"""
import json
import secrets
import sys
import time

import redis  # Debian: python3-redis

STREAM, EVENTS_MAXLEN = "heygem:jobs", 1000

SUBMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('job ' .. ARGV[1] .. ' exists already') end
local entry = redis.call('XADD', KEYS[2], '*', 'spec', ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'queued', 'spec', ARGV[2], 'submitted_at_ms', ARGV[3], 'attempts', 0, 'entry', entry)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
return entry
"""


def submit(r, audio, videos, outputs, options=None):
    job_id = secrets.token_hex(6)  # 12 lowercase hex digits
    spec = {"version": 1, "job_id": job_id, "audio": {"path": audio},
            "videos": [{"path": v} for v in videos], "outputs": outputs, "options": options or {}}
    job = f"{STREAM}:job:{job_id}"
    queued = json.dumps({"type": "event", "job_id": job_id, "event": "queued", "position": 1})
    r.eval(SUBMIT, 4, job, STREAM, f"{STREAM}:index", f"{job}:events",
           job_id, json.dumps(spec), int(time.time() * 1000), queued, EVENTS_MAXLEN)
    return job_id


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    url, audio, video, output = sys.argv[1:5]
    options = json.loads(sys.argv[5]) if len(sys.argv) == 6 else {"crf": 23}
    print(submit(redis.Redis.from_url(url), audio, [video], [output], options))
