"""The month-end batch's settings (Settings → Payments): retry days and request limits."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mspbill import audit
from mspbill.batch.retries import (
    DEFAULT_RETRY_DAYS,
    format_retry_days,
    parse_retry_days,
)
from mspbill.db.models import PaymentSettings
from mspbill.payments.processor import payment_settings
from mspbill.validation import Issue, ValidationError

RATE_LIMIT_MAX = 10_000
MARGIN_MAX = 90
# Below 10 % the bucket's small burst could push one second over the processor's limit.
MARGIN_MIN = 10


@dataclass(frozen=True)
class BatchSettings:
    retry_days: tuple[int, ...] = DEFAULT_RETRY_DAYS
    rate_limit_test: int = 25
    rate_limit_live: int = 100
    rate_margin_percent: int = 10


def batch_settings(session: Session) -> BatchSettings:
    row = session.get(PaymentSettings, 1)
    if row is None:
        return BatchSettings()
    try:
        days = parse_retry_days(row.retry_days)
    except ValidationError:
        days = DEFAULT_RETRY_DAYS  # written by something else; the default is the safe reading
    margin = row.rate_margin_percent if row.rate_margin_percent is not None else 10
    return BatchSettings(days, row.rate_limit_test or 25, row.rate_limit_live or 100,
                         min(max(margin, MARGIN_MIN), MARGIN_MAX))


def _whole(text: str | int, field: str, what: str, low: int, high: int, issues: list[Issue]) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        issues.append(Issue(field, f"{what} must be a whole number."))
        return 0
    if not low <= value <= high:
        issues.append(Issue(field, f"{what} must be between {low} and {high}."))
    return value


def save_batch_settings(session: Session, retry_days: str, rate_limit_test: str | int, rate_limit_live: str | int,
                        rate_margin_percent: str | int) -> BatchSettings:
    """Validate every field at once (rule 5) and save."""
    issues: list[Issue] = []
    days: tuple[int, ...] = ()
    try:
        days = parse_retry_days(retry_days)
    except ValidationError as exc:
        issues += exc.issues
    test = _whole(rate_limit_test, "rate_limit_test", "The test-mode limit", 1, RATE_LIMIT_MAX, issues)
    live = _whole(rate_limit_live, "rate_limit_live", "The live-mode limit", 1, RATE_LIMIT_MAX, issues)
    margin = _whole(rate_margin_percent, "rate_margin_percent", "The margin", MARGIN_MIN, MARGIN_MAX, issues)
    if issues:
        raise ValidationError(issues)
    row = payment_settings(session)
    # Compared as written back ("3, 5, 7"), so the default's "3,5,7" is not a change.
    before = {"retry_days": format_retry_days(parse_retry_days(row.retry_days)), "rate_limit_test": row.rate_limit_test,
              "rate_limit_live": row.rate_limit_live, "rate_margin_percent": row.rate_margin_percent}
    row.retry_days, row.rate_limit_test, row.rate_limit_live, row.rate_margin_percent = (
        format_retry_days(days), test, live, margin)
    audit.record(session, "settings.batch", "settings", 1,
                 f"Month-end batch: retries {format_retry_days(days) or 'none'} days after a decline; "
                 f"limits {test}/s test, {live}/s live, less {margin}%",
                 {"changes": audit.diff(before, {"retry_days": row.retry_days, "rate_limit_test": test,
                                                 "rate_limit_live": live, "rate_margin_percent": margin})})
    return BatchSettings(days, test, live, margin)
