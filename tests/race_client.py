"""A client process for tests/test_identity_race.py: ``python race_client.py upload|delete URL KEY [IMAGE...]``.

Reads one JSON command a line on stdin (``{"pid": 12, "delay": 0.05}``), waits ``delay`` seconds, then uploads the
images to person ``pid`` (``upload``) or deletes that person (``delete``), and answers one JSON line on stdout:
``{"status": 200, "body": ..., "start": t0, "end": t1}`` (times from ``time.time()``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx


def main() -> None:
    role, url, key, *images = sys.argv[1:]
    files = [(Path(p).name, Path(p).read_bytes()) for p in images]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for line in sys.stdin:
            cmd = json.loads(line)
            time.sleep(cmd["delay"])
            path = f"/v1/collections/default/persons/{cmd['pid']}"
            start = time.time()
            if role == "upload":
                r = client.post(path + "/faces", data={"face": "largest"},
                                files=[("files", (name, data, "image/jpeg")) for name, data in files])
            else:
                r = client.delete(path)
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
            sys.stdout.write(json.dumps({"status": r.status_code, "body": body, "start": start,
                                         "end": time.time()}) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
