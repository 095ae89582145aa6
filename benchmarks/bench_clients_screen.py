"""Opening the Clients screen with 10,000 clients (budget: under 0.5 s).

Measures, in one process with Qt offscreen: from asking the screen to load to
the table painted with its rows; then sorting by monthly value and filtering
as a person types.

    python benchmarks/bench_clients_screen.py [CLIENTS]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _common import demo_office, peak_rss_mb  # noqa: E402
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402

from mspbill.clients import list_clients  # noqa: E402
from mspbill.context import open_context  # noqa: E402
from ui.app import make_application  # noqa: E402
from ui.clients_screen import ClientsScreen  # noqa: E402
from ui.ops import Ops  # noqa: E402


def wait_for(pred, timeout_s: float = 30.0) -> None:
    loop = QEventLoop()
    deadline = time.perf_counter() + timeout_s
    while not pred():
        if time.perf_counter() > deadline:
            raise TimeoutError
        QTimer.singleShot(1, loop.quit)
        loop.exec()


def main() -> None:
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    folder = demo_office(clients)
    app = make_application(["bench"])
    ctx = open_context(str(folder))
    ops = Ops(ctx.db)

    with ctx.db.session() as s:
        t0 = time.perf_counter()
        rows = list_clients(s)
        query_s = time.perf_counter() - t0
    open_times = []
    for _ in range(5):
        screen = ClientsScreen(ops)
        screen.resize(1280, 800)
        screen.show()
        app.processEvents()
        loaded: list[int] = []
        screen.loaded.connect(loaded.append)
        t0 = time.perf_counter()
        screen.reload()
        wait_for(lambda: bool(loaded))
        screen.table.viewport().repaint()
        open_times.append(time.perf_counter() - t0)
        assert screen.model.rowCount() == len(rows)
        last = screen
        screen.close()

    t0 = time.perf_counter()
    last.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
    last.table.viewport().repaint()
    sort_s = time.perf_counter() - t0
    filter_times = []
    for prefix in ("c", "ca", "cas", "casc", "cascade"):
        t0 = time.perf_counter()
        last.search.setText(prefix)
        last.apply_filter()
        last.table.viewport().repaint()
        filter_times.append(time.perf_counter() - t0)

    print(f"clients: {len(rows)}")
    print(f"list_clients query + snapshots: {query_s * 1000:.0f} ms")
    print(f"open Clients screen (load off the UI thread, fill model, paint), 5 runs: "
          f"median {statistics.median(open_times) * 1000:.0f} ms, worst {max(open_times) * 1000:.0f} ms "
          f"(budget 500 ms)")
    print(f"sort by monthly value: {sort_s * 1000:.0f} ms; "
          f"filter per keystroke: worst {max(filter_times) * 1000:.0f} ms")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    ctx.close()


if __name__ == "__main__":
    main()
