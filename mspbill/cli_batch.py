"""Command line for the month-end batch: preview, run, sync, the runs kept, approving over-cap charges.

`mspbill batch run` is what a scheduled task calls: it asks before it charges
(at a terminal) or needs --yes, reports progress on standard error, and its
exit code says whether anything needs a person (see EXIT_CODES_HELP).
Ctrl+C stops new charges; those in flight finish and are recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mspbill.cli_documents import EXIT_ERROR, EXIT_OK, EXIT_USAGE, write_file_atomically
from mspbill.cli_output import emit_json as _emit
from mspbill.cli_output import print_table as _table
from mspbill.context import AppContext
from mspbill.money import format_amount
from mspbill.periods import Month, parse_period

if TYPE_CHECKING:
    from mspbill.batch.plan import BatchPreview
    from mspbill.batch.run import BatchProgress, BatchReport
    from mspbill.payments.gateway import Gateway

EXIT_BUSY = 3

EXIT_CODES_HELP = """exit codes:
  0  the run finished; nothing is left unknown, not charged or stopped (declines are retried on schedule)
  1  the run finished with charges whose outcome is still unknown or that were not charged, or it was
     cancelled (Ctrl+C) or stopped (key refused, processor down): run it again, or `mspbill batch sync`
  2  nothing was done: bad input (period too far ahead or long past), no confirmation, no Stripe key
  3  another month-end run is under way (this computer or another workstation); nothing was done"""

PERIOD_HELP = ("the billing month: YYYY-MM, or 'current' (this month) or 'next' (the coming month) "
               "for a scheduled task")

PROGRESS_EVERY = 2.0   # seconds between progress lines on standard error


class BatchCliError(RuntimeError):
    """A sentence for the person at the terminal; nothing was done (exit code 2)."""


def _handled(func: Callable[[AppContext, argparse.Namespace], int]) -> Callable[[AppContext, argparse.Namespace], int]:
    """BatchCliError: exit 2; another run holding the lock: exit 3 (cli.main handles the rest)."""
    from mspbill.batch.run import BatchBusyError

    def run(ctx: AppContext, args: argparse.Namespace) -> int:
        try:
            return func(ctx, args)
        except BatchCliError as exc:
            print(f"mspbill: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except BatchBusyError as exc:
            print(f"mspbill: {exc}", file=sys.stderr)
            return EXIT_BUSY

    return run


def resolve_period(text: str, today: dt.date) -> Month:
    """YYYY-MM (or any form parse_period reads), 'current' or 'next'."""
    word = (text or "").strip().lower()
    if word in ("current", "this"):
        return Month.of(today)
    if word == "next":
        return Month.of(today).shift(1)
    return parse_period(text)


def _money(totals: dict[str, int]) -> str:
    from mspbill.batch.plan import money_text

    return money_text(totals)


def _mode_label(mode: Any) -> str:
    return mode.label if mode is not None else "no payment processor (invoices only)"


# --- preview ------------------------------------------------------------------------------


def _target_json(t: Any) -> dict[str, Any]:
    return {"client_id": t.client_id, "client_name": t.client_name, "invoice_id": t.invoice_id,
            "invoice": t.number, "agreement_id": t.agreement_id, "period_start": t.period_start,
            "amount_cents": t.amount_cents, "currency": t.currency, "amount": format_amount(t.amount_cents, t.currency)}


def preview_json(preview: BatchPreview) -> dict[str, Any]:
    return {
        "period": str(preview.month), "mode": preview.mode.value if preview.mode else None,
        "mode_label": _mode_label(preview.mode), "today": preview.today, "summary": preview.summary(),
        "nothing_to_do": preview.nothing_to_do,
        "invoices": [{"client_id": i.client_id, "client_name": i.client_name, "title": i.title,
                      "total_cents": i.total_cents, "currency": i.currency, "autopay": i.autopay,
                      "draft_id": i.draft_id, "notes": i.notes} for i in preview.invoices],
        "charges": [{**_target_json(c.target), "kind": c.kind.value, "method": c.method_label,
                     "method_kind": c.method_kind, "over_cap_approved": c.over_cap_approved,
                     "retry_number": c.retry_number} for c in preview.charges],
        "left_out": [{**_target_json(lo.target), "reason": lo.reason.value, "reason_label": lo.reason.label,
                      "detail": lo.detail, "method": lo.method_label, "next_retry_on": lo.next_retry_on,
                      "approvable": lo.approvable} for lo in preview.left_out],
        "totals": {"invoices": {"count": len(preview.invoices), "cents": preview.invoice_totals()},
                   "charges": {"count": len(preview.charges), "cents": preview.charge_totals()},
                   "retries": {"count": len(preview.retries), "cents": preview.retry_totals()},
                   "left_out": {"count": len(preview.left_out), "cents": preview.left_out_totals()}},
        "agreements_not_invoiced": preview.agreements_not_invoiced,
    }


def _charge_what(c: Any) -> str:
    from mspbill.batch.plan import ChargeKind

    what = {ChargeKind.NEW: "new invoice", ChargeKind.OPEN: "earlier invoice",
            ChargeKind.RETRY: f"retry {c.retry_number}"}[c.kind]
    return what + (", above cap (approved)" if c.over_cap_approved else "")


def print_preview(preview: BatchPreview) -> None:
    autopay = sum(1 for i in preview.invoices if i.autopay)
    print(f"Month-end preview for {preview.month.label} — {_mode_label(preview.mode)}\n")
    print(f"Invoices to issue: {len(preview.invoices)} ({_money(preview.invoice_totals())}); "
          f"{autopay} autopay, {len(preview.invoices) - autopay} e-mailed to pay by invoice")
    if preview.charges:
        print(f"\nCharges ({len(preview.charges)}, {_money(preview.charge_totals())}):")
        _table(["Client", "Invoice", "Amount", "Method", "What"],
               [[c.target.client_name, c.target.number, format_amount(c.target.amount_cents, c.target.currency),
                 c.method_label, _charge_what(c)] for c in preview.charges])
    else:
        print("\nNo charges.")
    if preview.left_out:
        print(f"\nLeft out ({len(preview.left_out)}):")
        _table(["Client", "Invoice", "Amount", "Reason", "Next retry"],
               [[lo.target.client_name, lo.target.number, format_amount(lo.target.amount_cents, lo.target.currency),
                 lo.reason.label, lo.next_retry_on.isoformat() if lo.next_retry_on else ""]
                for lo in preview.left_out])
    retries = preview.retries
    print(f"\nRetries due: {len(retries)}"
          + (f" ({_money(preview.retry_totals())})" if retries else ""))
    print(f"Totals: {len(preview.invoices)} invoice(s) {_money(preview.invoice_totals())}; "
          f"{len(preview.charges)} charge(s) {_money(preview.charge_totals())}; "
          f"{len(preview.left_out)} left out {_money(preview.left_out_totals())}")
    print(f"Mode: {_mode_label(preview.mode)}")
    over_cap = [lo for lo in preview.left_out if lo.approvable]
    if over_cap:
        print(f"\n{len(over_cap)} invoice(s) above the client's autopay cap await approval: "
              f"`mspbill batch approve --period {preview.month} --client ID`.")
    print(f"\n{preview.summary()}")
    if not preview.nothing_to_do:
        print(f"Run it with `mspbill batch run --period {preview.month}`.")


def _preview(ctx: AppContext, month: Month, today: dt.date, *, gateway: Gateway | None = None,
             office: bool = True) -> BatchPreview:
    from mspbill.batch.plan import preview_batch

    with ctx.db.session() as s:
        if office:
            return preview_batch(s, month, today=today)
        return preview_batch(s, month, today=today, mode=gateway.mode if gateway is not None else None,
                             use_office_mode=False)


@_handled
def cmd_batch_preview(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.plan import preview_csv

    today = dt.date.today()
    preview = _preview(ctx, resolve_period(args.period, today), today)
    if args.csv:
        path = Path(args.csv).expanduser()
        if path.is_dir():
            path = path / f"month-end-preview-{preview.month}.csv"
        # With a byte-order mark: Excel then reads the clients' names as UTF-8.
        write_file_atomically(path, preview_csv(preview).encode("utf-8-sig"))
        print(f"Saved the preview to {path}", file=sys.stderr)
    if args.json:
        _emit(preview_json(preview))
    else:
        print_preview(preview)
    return EXIT_OK


# --- the run --------------------------------------------------------------------------


def _open_gateway(ctx: AppContext) -> Gateway | None:
    """The office's processor; None when payments are off (the run then only issues invoices).
    A processor chosen but unusable (no Stripe key on this computer) stops here, before anything runs."""
    from mspbill.db.models import PaymentSettings, ProcessorKind
    from mspbill.payments.gateway import NotConfiguredError
    from mspbill.payments.processor import open_gateway

    with ctx.db.session() as s:
        row = s.get(PaymentSettings, 1)
        kind = row.processor if row is not None else ProcessorKind.NONE
    if kind is ProcessorKind.NONE:
        return None
    try:
        return open_gateway(ctx.db, ctx.paths.data_dir)
    except NotConfiguredError as exc:
        raise BatchCliError(f"{exc.message} Nothing was run.") from None
    except ValueError as exc:  # MSPBILL_SANDBOX_* variables that cannot be read
        raise BatchCliError(f"{exc} Nothing was run.") from None


def _check_not_busy(ctx: AppContext) -> None:
    """Say at once that another run holds the lock, rather than after asking for confirmation."""
    from mspbill.batch.run import BatchBusyError, busy_text, live_run

    with ctx.db.session() as s:
        current = live_run(s)
        if current is not None:
            raise BatchBusyError(busy_text(current))


def _what_it_does(preview: BatchPreview) -> str:
    parts = []
    if preview.invoices:
        parts.append(f"issue {len(preview.invoices)} invoice(s) ({_money(preview.invoice_totals())})")
    if preview.charges:
        parts.append(f"charge {len(preview.charges)} ({_money(preview.charge_totals())})")
    what = " and ".join(parts) or "check earlier charges without a known outcome"
    return f"{what} for {preview.month.label} in {_mode_label(preview.mode)}"


def _confirm(preview: BatchPreview, yes: bool) -> None:
    live = preview.mode is not None and preview.mode.moves_money and bool(preview.charges)
    if yes:
        return
    what = _what_it_does(preview)
    if sys.stdin is None or not sys.stdin.isatty():
        raise BatchCliError(f"This would {what}" + (" — real money" if live else "") + ". Nothing was done: run it "
                            "at a terminal to confirm, or add --yes (for a scheduled task).")
    word = "LIVE" if live else "yes"
    prompt = (f"Stripe LIVE mode: this will {what}, with real money. Type LIVE to go on: " if live
              else f"Type yes to {what}: ")
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip() != word:
        raise BatchCliError("Nothing was done.")


class ProgressPrinter:
    """One line on standard error at each stage and every PROGRESS_EVERY seconds while charging."""

    def __init__(self, stream: TextIO, every: float = PROGRESS_EVERY, clock: Callable[[], float] = time.monotonic):
        self.stream, self.every, self.clock = stream, every, clock
        self.lock = threading.Lock()
        self.stage = ""
        self.last = 0.0

    @staticmethod
    def line(p: BatchProgress) -> str:
        if p.stage != "charging":
            return p.text
        parts = [f"{p.succeeded} succeeded"]
        for count, name in ((p.processing, "processing"), (p.failed, "declined"), (p.unknown, "unknown"),
                            (p.not_charged, "not charged")):
            if count:
                parts.append(f"{count} {name}")
        left = f"; about {_duration(p.seconds_left)} left" if p.seconds_left is not None and p.done < p.total else ""
        return f"Charging {p.done}/{p.total}: {', '.join(parts)}; {_money(p.collected)} collected{left}"

    def __call__(self, p: BatchProgress) -> None:
        now = self.clock()
        with self.lock:
            if p.stage == self.stage and now - self.last < self.every:
                return
            self.stage, self.last = p.stage, now
            text = self.line(p)
            if text:
                print(text, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "a second"
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _with_ctrl_c(work: Callable[[threading.Event], Any]) -> Any:
    """Run work(cancel) on a thread; Ctrl+C sets `cancel` (new charges stop, those in flight are
    recorded).  A third Ctrl+C quits at once: the next run finds out what happened to the charges
    that were in flight (each was written with its idempotency key before the processor was called)."""
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work(cancel)
        except BaseException as exc:  # noqa: BLE001 -- re-raised on the main thread, where cli.main reports it
            outcome["error"] = exc

    presses = 0

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            cancel.set()
            print("\nStopping after the charges in flight… (they are recorded; nothing new is started)",
                  file=sys.stderr, flush=True)
        elif presses == 2:
            print("\nStill recording the charges in flight. Press Ctrl+C once more to quit now; the next run "
                  "then finds out what happened to them before charging anything.", file=sys.stderr, flush=True)
        else:
            print("\nQuit.", file=sys.stderr, flush=True)
            os._exit(130)

    worker = threading.Thread(target=target, name="batch-run", daemon=True)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if on_main else None
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    finally:
        if on_main:
            signal.signal(signal.SIGINT, previous)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _line_json(ln: Any) -> dict[str, Any]:
    return {**dataclasses.asdict(ln), "amount": format_amount(ln.amount_cents, ln.currency)}


def report_json(report: BatchReport) -> dict[str, Any]:
    return {
        "ran": True, "run_id": report.run_id, "period": report.period,
        "mode": report.mode.value if report.mode else None, "mode_label": _mode_label(report.mode),
        "status": report.status.value, "headline": report.headline(), "message": report.message,
        "started_at": report.started_at, "finished_at": report.finished_at,
        "generated": report.generated, "issued": report.issued, "counts": report.counts(),
        "collected_cents": report.collected(), "collected": _money(report.collected()),
        "lines": [_line_json(ln) for ln in report.lines],
        "left_out": [{**_target_json(lo.target), "reason": lo.reason.value, "reason_label": lo.reason.label,
                      "detail": lo.detail, "next_retry_on": lo.next_retry_on} for lo in report.left_out],
        "not_started": report.not_started,
        "mail": {"receipts": report.mail.receipts, "invoices": report.mail.invoices,
                 "not_configured": report.mail.not_configured, "skipped": report.mail.skipped},
        "setup_links_sent": report.setup_links_sent, "problems": report.problems,
        "backup_path": report.backup_path, "resumed_run_id": report.resumed_run_id,
    }


def _lines_table(lines: Sequence[Any], *, retry: bool = False) -> None:
    headers = ["Client", "Invoice", "Amount", "Method", "Reason" if retry else "Note"]
    rows = [[ln.client_name, ln.invoice_number, format_amount(ln.amount_cents, ln.currency), ln.method_label,
             ln.message] for ln in lines]
    if retry:
        headers.append("Next retry")
        for row, ln in zip(rows, lines, strict=True):
            row.append(ln.next_retry_on.isoformat() if ln.next_retry_on
                       else ("never: needs a new method" if ln.hard else "no retry left"))
    _table(headers, rows)


def print_report(report: BatchReport) -> None:
    from mspbill.db.models import BatchRunStatus

    print(report.headline())
    print(f"Run {report.run_id}, {_mode_label(report.mode)}"
          + (f"; resumed interrupted run {report.resumed_run_id}" if report.resumed_run_id else ""))
    if report.message and report.status is not BatchRunStatus.FINISHED:
        print(report.message)
    sections = [
        ("failed", "Declined", True),
        ("processing", "Bank debits processing (they settle within about 4 business days; `mspbill batch sync`)", False),
        ("unknown", "Outcome unknown (`mspbill batch sync` or the next run finds out before charging again)", False),
        ("not_charged", "Not charged (the next run charges them)", False)]
    for status, title, retry in sections:
        lines = report.by_status(status)
        if lines:
            print(f"\n{title} ({len(lines)}):")
            _lines_table(lines, retry=retry)
    if report.not_started:
        print(f"\n{report.not_started} charge(s) not started; run again to charge them.")
    if report.left_out:
        print(f"\nLeft out ({len(report.left_out)}):")
        _table(["Client", "Invoice", "Amount", "Reason"],
               [[lo.target.client_name, lo.target.number, format_amount(lo.target.amount_cents, lo.target.currency),
                 lo.reason.label] for lo in report.left_out])
    if report.problems:
        print("\nProblems:")
        for p in report.problems:
            print(f"  - {p}")
    mail = report.mail
    if mail.not_configured:
        print("\nE-mail is not set up, so no receipt or invoice e-mail was queued (Settings → E-mail).")
    elif mail.receipts or mail.invoices:
        print(f"\nQueued {mail.receipts} receipt(s) and {mail.invoices} invoice e-mail(s) in the outbox "
              "(`mspbill outbox send`).")
    for skipped in mail.skipped:
        print(f"  Not e-mailed: {skipped}")
    if report.setup_links_sent:
        print(f"\nNew payment setup links e-mailed to: {', '.join(report.setup_links_sent)}")
    if report.backup_path:
        print(f"\nBackup before the run: {report.backup_path}")


def run_exit_code(report: BatchReport) -> int:
    from mspbill.db.models import BatchRunStatus

    counts = report.counts()
    if (report.status is not BatchRunStatus.FINISHED or counts["unknown"] or counts["not_charged"]
            or report.not_started):
        return EXIT_ERROR
    return EXIT_OK


@_handled
def cmd_batch_run(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.plan import LeftOutReason, check_period
    from mspbill.batch.run import RunOptions, run_batch

    today = dt.date.today()
    month = resolve_period(args.period, today)
    check_period(month, today)
    gateway = _open_gateway(ctx)
    preview = _preview(ctx, month, today, gateway=gateway, office=False)
    _check_not_busy(ctx)
    say = sys.stderr if args.json else sys.stdout
    if gateway is None:
        print("No payment processor is set up: the run issues the invoices and charges nothing "
              "(choose one in Settings → Payments or with `mspbill payments use`).", file=say)
    print(preview.summary(), file=say, flush=True)
    unresolved = any(lo.reason is LeftOutReason.UNKNOWN for lo in preview.left_out)
    if preview.nothing_to_do and not unresolved:
        if args.json:
            document = preview_json(preview)
            _emit({"ran": False, "run_id": None, "period": str(month), "mode": document["mode"],
                   "mode_label": document["mode_label"], "status": "nothing_to_do", "message": preview.summary(),
                   "counts": {k: 0 for k in ("succeeded", "processing", "failed", "unknown", "not_charged",
                                             "not_started")},
                   "left_out": document["left_out"]})
        else:
            if preview.left_out:
                _table(["Client", "Invoice", "Amount", "Reason", "Next retry"],
                       [[lo.target.client_name, lo.target.number,
                         format_amount(lo.target.amount_cents, lo.target.currency), lo.reason.label,
                         lo.next_retry_on.isoformat() if lo.next_retry_on else ""] for lo in preview.left_out])
            print("Nothing was run.")
        return EXIT_OK
    _confirm(preview, args.yes)
    progress = ProgressPrinter(sys.stderr)

    def work(cancel: threading.Event) -> BatchReport:
        return run_batch(ctx.db, gateway, month, backup_dir=ctx.paths.backup_dir, progress=progress, cancel=cancel,
                         options=RunOptions(today=today))

    report: BatchReport = _with_ctrl_c(work)
    if args.json:
        _emit(report_json(report))
    else:
        print()
        print_report(report)
    return run_exit_code(report)


# --- after the run ------------------------------------------------------------------------


@_handled
def cmd_batch_sync(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.run import batch_sync
    from mspbill.payments.processor import open_gateway

    report = batch_sync(ctx.db, open_gateway(ctx.db, ctx.paths.data_dir))
    if args.json:
        _emit({**report.sync.as_dict(), "receipts_queued": report.receipts_queued})
    else:
        for line in report.lines():
            print(line)
    return EXIT_ERROR if report.sync.errors else EXIT_OK


@_handled
def cmd_batch_runs(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.run import list_runs

    with ctx.db.session() as s:
        rows = list_runs(s, limit=args.limit)
    if args.json:
        _emit([dataclasses.asdict(r) for r in rows])
        return EXIT_OK
    if not rows:
        print("No month-end run yet.")
        return EXIT_OK
    _table(["Run", "Period", "Mode", "Status", "Started", "By", "Issued", "Charged", "Declined", "Collected"],
           [[str(r.id), r.period, r.mode or "none", r.status, f"{r.started_at.astimezone():%Y-%m-%d %H:%M}",
             f"{r.actor}@{r.host}" if r.actor else r.host, str(r.issued), str(r.succeeded), str(r.failed),
             _money(r.collected)] for r in rows])
    print("\nOne run's account: `mspbill batch show RUN`.")
    return EXIT_OK


@_handled
def cmd_batch_show(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.run import run_report

    with ctx.db.session() as s:
        report = run_report(s, args.run_id)
    if args.json:
        _emit(report_json(report))
    else:
        print_report(report)
    return EXIT_OK


@_handled
def cmd_batch_approve(ctx: AppContext, args: argparse.Namespace) -> int:
    from mspbill.batch.plan import approve_over_cap, preview_batch

    today = dt.date.today()
    month = resolve_period(args.period, today)
    approved = []
    with ctx.db.write_session() as s, s.begin():
        preview = preview_batch(s, month, today=today)
        waiting = [lo for lo in preview.left_out if lo.approvable]
        chosen = [lo for lo in waiting if (args.client is not None and lo.target.client_id == args.client)
                  or (args.invoice is not None and lo.target.number.casefold() == args.invoice.strip().casefold())]
        if not chosen:
            who = f"client {args.client}" if args.client is not None else args.invoice
            known = "; ".join(f"{lo.target.number} ({lo.target.client_name}, client {lo.target.client_id})"
                              for lo in waiting[:10])
            raise BatchCliError(f"Nothing of {who} is above its autopay cap and waiting for approval in the "
                                f"{month.label} preview." + (f" Waiting: {known}." if known else ""))
        for lo in chosen:
            approve_over_cap(s, lo.target)
            approved.append(lo)
    if args.json:
        _emit({"period": str(month), "approved": [_target_json(lo.target) for lo in approved]})
        return EXIT_OK
    for lo in approved:
        print(f"Approved {lo.target.number} for {lo.target.client_name}: "
              f"{format_amount(lo.target.amount_cents, lo.target.currency)}; the {month.label} run charges it "
              "(up to that amount).")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------


def add_batch_commands(sub: Any) -> None:
    batch = sub.add_parser(
        "batch", help="the month-end run: invoice every agreement and charge every autopay client").add_subparsers(
        dest="subcommand", required=True)

    pv = batch.add_parser("preview", help="what the run would do: invoices, charges, who is left out and why")
    pv.add_argument("--period", required=True, metavar="YYYY-MM", help=PERIOD_HELP)
    pv.add_argument("--csv", metavar="FILE", help="also save the preview as a CSV file (a spreadsheet opens it)")
    pv.add_argument("--json", action="store_true", help="print JSON")
    pv.set_defaults(func=cmd_batch_preview)

    run = batch.add_parser(
        "run", help="issue the month's invoices and charge the autopay clients",
        description="Issue the period's invoices and charge every autopay invoice that is due, after showing "
                    "what will happen and asking (at a terminal) or with --yes (a scheduled task). Progress goes "
                    "to standard error; Ctrl+C stops new charges and records those in flight. Running it again "
                    "never charges an invoice twice; a daily run charges the retries that have come due.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--period", required=True, metavar="YYYY-MM", help=PERIOD_HELP)
    run.add_argument("--yes", action="store_true",
                     help="do not ask (for a scheduled task); also confirms Stripe LIVE mode")
    run.add_argument("--json", action="store_true", help="print the result as JSON (progress stays on stderr)")
    run.set_defaults(func=cmd_batch_run)

    sy = batch.add_parser("sync", help="settle bank debits, resolve charges without a known outcome, queue their "
                                       "receipts (exit 1 if the processor could not be asked)")
    sy.add_argument("--json", action="store_true", help="print JSON")
    sy.set_defaults(func=cmd_batch_sync)

    rs = batch.add_parser("runs", help="the month-end runs, newest first")
    rs.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50)")
    rs.add_argument("--json", action="store_true", help="print JSON")
    rs.set_defaults(func=cmd_batch_runs)

    sh = batch.add_parser("show", help="one run's account: charged, declined, processing, unknown, problems")
    sh.add_argument("run_id", type=int, metavar="RUN", help="the run's number from `mspbill batch runs`")
    sh.add_argument("--json", action="store_true", help="print JSON")
    sh.set_defaults(func=cmd_batch_show)

    ap = batch.add_parser("approve", help="let the run charge invoices above a client's autopay cap")
    ap.add_argument("--period", required=True, metavar="YYYY-MM", help=PERIOD_HELP)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", type=int, metavar="ID", help="every over-cap invoice of this client")
    which.add_argument("--invoice", metavar="NUMBER", help="one issued invoice, for example INV-000123")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.set_defaults(func=cmd_batch_approve)
