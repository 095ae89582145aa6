"""E-mail: the office's SMTP account and invoice template, the outbox that
never loses a message, and failures explained in sentences a person can act on.

    settings   the account and templates (MailSettings row; password in the keyring)
    templates  placeholders such as {number} and their values for an invoice
    smtp       connect, secure, log in, send; MailError and classify
    outbox     queue, send with retries, status
"""

from mspbill.mail.outbox import (
    BACKOFF_MINUTES,
    EmailStatus,
    OutboxRow,
    QueueReport,
    SendReport,
    SkippedInvoice,
    UnsentCount,
    backoff,
    count_unsent_invoices,
    discard_messages,
    email_status_by_invoice,
    list_outbox,
    outbox_counts,
    queue_invoice_email,
    queue_unsent_invoices,
    queued_message_ids,
    retry_messages,
    send_outbox,
)
from mspbill.mail.settings import (
    MailSettingsDraft,
    SmtpAccount,
    is_configured,
    mail_settings_draft,
    save_mail_settings,
    validate_mail_settings,
)
from mspbill.mail.smtp import MailError, classify, send_test_email
from mspbill.mail.templates import PLACEHOLDERS, render, sample_values

__all__ = [
    "BACKOFF_MINUTES", "PLACEHOLDERS", "EmailStatus", "MailError", "MailSettingsDraft", "OutboxRow",
    "QueueReport", "SendReport", "SkippedInvoice", "SmtpAccount", "UnsentCount", "backoff", "classify",
    "count_unsent_invoices", "discard_messages",
    "email_status_by_invoice", "is_configured", "list_outbox", "mail_settings_draft", "outbox_counts",
    "queue_invoice_email", "queue_unsent_invoices", "queued_message_ids", "render", "retry_messages", "sample_values",
    "save_mail_settings", "send_outbox", "send_test_email", "validate_mail_settings",
]
