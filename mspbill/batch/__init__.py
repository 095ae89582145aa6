"""The month-end autopay batch: preview, run, retries, sync (see run.py for the safety rules)."""
