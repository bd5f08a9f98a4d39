"""bench/synth: generation speed and peak memory of the incident generator at a given request count.

    python -m bench.synth 1000000 10000000

Each size runs in a fresh process (peak RSS is per process) on the `s3_throttle` preset stretched to the
request count: prints requests, seconds, requests/s, output size and peak RSS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from workbench.synth import generate, preset
n, out = int(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
truth = generate(out, preset("s3_throttle", requests=n, minutes=max(120, n // 5000), scrape_interval_s=60))
print(json.dumps({"requests": truth["counts"]["requests"], "seconds": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main(sizes: list[int]) -> None:
    for n in sizes:
        out = Path(tempfile.mkdtemp(prefix="synth-bench-"))
        try:
            r = subprocess.run([sys.executable, "-c", CHILD, str(n), str(out)], capture_output=True, text=True,
                               check=True, timeout=3600)
            d = json.loads(r.stdout.strip().splitlines()[-1])
            size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            print(f"{d['requests']:>12,} requests  {d['seconds']:8.1f} s  {d['requests'] / d['seconds']:>10,.0f} req/s  "
                  f"{size / 2**20:>8,.0f} MiB written  peak RSS {d['peak_rss_mib']:,.0f} MiB", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1_000_000])
