"""PDF documents (invoices, statements) drawn with ReportLab."""
