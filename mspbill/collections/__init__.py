"""Collections: payment reminders and late fees (issue 7).

- settings.py: the reminder schedule (steps and their e-mails) and the late-fee policy.
- reminders.py: which invoices get which reminder today, queued once per step through the outbox.
- late_fees.py: fees assessed on overdue invoices, billed on the next invoice or one of their own, waived.
- run.py: one pass of both, run by the app (at start and every hour) and `mspbill collections run`.

Who gets followed up: an open invoice with a balance, of a client who pays by invoice; an
autopay client only when the charge failed and nothing will charge it again by itself
(autopay_state "needs_method" after a declined attempt) -- a soft decline the batch
retries, a bank debit settling or an invoice waiting for the office's approval is left alone.
"""
