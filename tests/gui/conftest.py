"""Qt tests: offscreen platform, a real SQLite file per test, the real Ops pool."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from mspbill.context import AppContext, open_context  # noqa: E402
from mspbill.demo import create_demo_office  # noqa: E402


@pytest.fixture
def app_ctx(tmp_path, qapp) -> Iterator[AppContext]:
    ctx = open_context(str(tmp_path / "data"))
    yield ctx
    ctx.close()


@pytest.fixture
def demo_ctx(app_ctx: AppContext) -> AppContext:
    with app_ctx.db.session() as session, session.begin():
        create_demo_office(session, clients=12, seed=7)
    return app_ctx


@pytest.fixture
def ops(app_ctx, qtbot):
    from ui.ops import Ops

    ops = Ops(app_ctx.db)
    yield ops
    qtbot.waitUntil(lambda: ops.active == 0, timeout=10_000)


def wait_idle(qtbot, ops) -> None:
    qtbot.waitUntil(lambda: ops.active == 0, timeout=10_000)
