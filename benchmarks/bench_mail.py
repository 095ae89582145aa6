"""E-mailing a month's invoices: queue every unsent invoice, then send them all,
PDF attached, to an aiosmtpd server on 127.0.0.1 — what "E-mail all new
invoices" does for an office of that size.

Prints the time to queue, the time to send (rendering each PDF at send time
included), messages per second, and peak memory.

    python benchmarks/bench_mail.py [INVOICES]      (default 500)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

from _common import peak_rss_mb
from bench_pdf import build_office
from smtp_server import SmtpTestServer

from mspbill.db.schema import open_database
from mspbill.mail import (
    MailSettingsDraft,
    queue_unsent_invoices,
    save_mail_settings,
    send_outbox,
)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory(prefix="mspbill-bench-mail-") as tmp, SmtpTestServer() as server:
        build_office(Path(tmp), count)
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", Path(tmp) / "backups")
        try:
            with db.write_session() as s, s.begin():
                save_mail_settings(s, MailSettingsDraft(host="127.0.0.1", port=str(server.port), security="none",
                                                        from_address="billing@acme-it.example",
                                                        from_name="Acme IT Services"))
            t0 = time.perf_counter()
            with db.write_session() as s, s.begin():
                queued = queue_unsent_invoices(s)
            queue_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = send_outbox(db, None)
            send_s = time.perf_counter() - t0
        finally:
            db.dispose()
        received = len(server.received)
        mean_kb = sum(len(r.data) for r in server.received) / max(1, received) / 1024
    n = len(queued.queued)
    print(f"{n:,} invoice e-mails (PDF attached) to aiosmtpd on 127.0.0.1:")
    print(f"  queue (queue_unsent_invoices)  {queue_s:6.2f} s")
    print(f"  send  (send_outbox)            {send_s:6.2f} s  {send_s / max(1, n) * 1000:6.1f} ms/message"
          f"  {n / send_s:5.1f} messages/s")
    print(f"  sent {report.sent:,}, failed {report.failed}, received {received:,} (mean {mean_kb:.0f} KB each)")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
