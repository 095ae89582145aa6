"""Shared set-up for the benchmarks: demo offices cached under bench-data/."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from mspbill.context import open_context
from mspbill.demo import create_demo_office

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench-data"


def demo_office(clients: int) -> Path:
    """A data folder holding a demo office of `clients` clients (made once, then reused)."""
    folder = CACHE / f"office-{clients}"
    marker = folder / ".complete"
    if not marker.exists():
        if folder.exists():
            for f in folder.rglob("*"):
                if f.is_file():
                    f.unlink()
        t0 = time.perf_counter()
        ctx = open_context(str(folder))
        with ctx.db.session() as session, session.begin():
            create_demo_office(session, clients=clients)
        ctx.close()
        marker.touch()
        print(f"(made a demo office of {clients} clients in {time.perf_counter() - t0:.1f} s)")
    return folder


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
