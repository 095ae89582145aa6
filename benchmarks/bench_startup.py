"""Start-up to the first painted main window (budget: under 2 s).

Launches the real app in a fresh process (Qt offscreen) on a demo office of 60
clients, several times, and prints the median and worst.

    python benchmarks/bench_startup.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from _common import demo_office


def one_run(data_dir: str) -> float:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MSPBILL_EXIT_AFTER_START="1",
               MSPBILL_T0=repr(time.time()))
    proc = subprocess.run([sys.executable, "-m", "mspbill", "--data-dir", data_dir],
                          env=env, capture_output=True, text=True, timeout=60)
    for line in proc.stderr.splitlines():
        if line.startswith("first-paint-seconds "):
            return float(line.split()[1])
    raise RuntimeError(f"the app did not report a first paint:\n{proc.stderr}")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    folder = str(demo_office(60))
    one_run(folder)  # warm the OS file cache and byte-code
    times = [one_run(folder) for _ in range(runs)]
    print(f"start-up to first painted main window, {runs} runs: "
          f"median {statistics.median(times):.3f} s, best {min(times):.3f} s, worst {max(times):.3f} s "
          f"(budget 2 s)")


if __name__ == "__main__":
    main()
