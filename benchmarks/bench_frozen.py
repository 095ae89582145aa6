"""The frozen app (packaging/mspbill.spec): bundle size, build time, start-up against the dev venv.

    python benchmarks/bench_frozen.py [--dist FOLDER] [--runs N]

Without --dist it builds the bundle into a temporary folder with PyInstaller (and times that);
with --dist it measures an existing bundle folder (the one holding mspbill and mspbill-cli).
Prints the size on disk, the file count, the ten largest items, and the median start-up of
`--version` and of the desktop app to its first painted window (Qt offscreen, a 60-client demo
office), each next to the same from the dev venv (`python -m mspbill`).  "First" is the first run
after the build or after the dev venv was last used, not a cold disk cache (the benchmark does
not drop the machine's page cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT, demo_office

SPEC = ROOT / "packaging" / "mspbill.spec"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSPBILL_")}
    env.update(extra)
    return env


def build(out: Path) -> tuple[Path, float]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(out / "dist"), "--workpath", str(out / "build"), str(SPEC)],
                   check=True, env=clean_env(), cwd=ROOT, timeout=1800)
    return out / "dist" / "mspbill", time.perf_counter() - t0


def disk_bytes(path: Path) -> int:
    """Bytes the file or folder takes on disk (allocated blocks, like du)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if not p.is_symlink())


def report_size(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
    total = disk_bytes(folder)
    print(f"bundle {folder}: {total / 1e6:.1f} MB on disk, {len(files)} files")
    internal = folder / "_internal"
    items = [*internal.iterdir(), folder / "mspbill", folder / "mspbill-cli"]
    print("largest items (folders summed):")
    for size, path in sorted(((disk_bytes(p), p) for p in items), reverse=True)[:10]:
        print(f"  {size / 1e6:7.1f} MB  {path.relative_to(folder)}")
    print("largest single files:")
    for size, path in sorted(((p.stat().st_size, p) for p in files), reverse=True)[:10]:
        print(f"  {size / 1e6:7.1f} MB  {path.relative_to(folder)}")


def seconds(argv: Sequence[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(list(argv), check=True, env=env, capture_output=True, timeout=120)
    return time.perf_counter() - t0


def first_paint(argv: Sequence[str]) -> float:
    env = clean_env(QT_QPA_PLATFORM="offscreen", MSPBILL_EXIT_AFTER_START="1", MSPBILL_T0=repr(time.time()))
    proc = subprocess.run(list(argv), check=False, env=env, capture_output=True, text=True, timeout=120)
    for line in proc.stderr.splitlines():
        if line.startswith("first-paint-seconds "):
            return float(line.split()[1])
    raise RuntimeError(f"no first paint reported by {argv[0]}:\n{proc.stderr}")


def runs_of(measure: object, runs: int) -> str:
    assert callable(measure)
    first = measure()
    times = [measure() for _ in range(runs)]
    return f"first {first:.2f} s, median {statistics.median(times):.2f} s (best {min(times):.2f}, worst {max(times):.2f})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, help="an existing bundle folder (holding mspbill-cli)")
    parser.add_argument("--runs", type=int, default=5, help="runs per start-up figure after the first (default 5)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mspbill-frozen-") as tmp:
        if args.dist:
            folder = args.dist.resolve()
        else:
            folder, took = build(Path(tmp))
            print(f"build: {took:.0f} s (PyInstaller, {os.cpu_count()} cores)")
        report_size(folder)
        office = str(demo_office(60))
        env = clean_env()
        cli, gui = str(folder / "mspbill-cli"), str(folder / "mspbill")
        dev = [sys.executable, "-m", "mspbill"]
        print(f"--version, frozen : {runs_of(lambda: seconds([cli, '--version'], env), args.runs)}")
        print(f"--version, dev    : {runs_of(lambda: seconds([*dev, '--version'], env), args.runs)}")
        print(f"first paint, frozen: {runs_of(lambda: first_paint([gui, '--data-dir', office]), args.runs)}")
        print(f"first paint, dev   : {runs_of(lambda: first_paint([*dev, '--data-dir', office]), args.runs)}")


if __name__ == "__main__":
    main()
