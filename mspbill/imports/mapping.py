"""Which column of the file feeds which field: the fields of each kind of import, a guess
from the header names, and the person's own choices (`--map FIELD=COLUMN`, the dialog).

Header names are compared without case, blanks or punctuation ("Company Name",
"company_name", "COMPANY-NAME" are one), against the names PSA tools (ConnectWise,
Autotask, HaloPSA), QuickBooks (Online's customer export and import, Desktop's customer
list and IIF) and spreadsheets commonly use.  A mapping is field -> column index; a field
left out is not imported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mspbill.imports.reading import CsvTable


@dataclass(frozen=True)
class ImportField:
    key: str
    label: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    hint: str = ""


def _f(key: str, label: str, *aliases: str, required: bool = False, hint: str = "") -> ImportField:
    return ImportField(key, label, required, aliases, hint)


CLIENT_FIELDS: tuple[ImportField, ...] = (
    _f("legal_name", "Client name", "client name", "client", "name", "company name", "company", "customer",
       "customer name", "account name", "account", "display name", "display name as", "organization",
       "organisation", "organization name", "business name", "legal name", "full name", "site name",
       required=True),
    _f("billing_emails", "Billing e-mail(s)", "billing email", "billing emails", "billing e-mail", "invoice email",
       "invoice emails", "accounts payable email", "ap email", "main email", "email", "e-mail", "email address",
       "primary email", "company email", "bill to email", "emails",
       hint="several addresses separated by commas or semicolons"),
    _f("phone", "Phone", "phone", "main phone", "phone number", "company phone", "telephone", "tel",
       "phone numbers", "phone1", "business phone", "office phone"),
    _f("contact_name", "Contact name", "contact name", "primary contact", "contact", "primary contact name",
       "main contact", "billing contact", "contact full name", "cont1"),
    _f("contact_role", "Contact role", "contact role", "contact title", "job title", "title", "primary contact title"),
    _f("contact_email", "Contact e-mail", "contact email", "primary contact email", "contact e-mail",
       "billing contact email"),
    _f("contact_phone", "Contact phone", "contact phone", "primary contact phone", "contact phone number",
       "mobile", "cell phone"),
    _f("more_contacts", "Other contacts", "other contacts", "additional contacts", "contacts",
       hint="one contact per line: name, role, e-mail, phone"),
    _f("address_line1", "Address line 1", "address line 1", "address 1", "address1", "address", "street",
       "street address", "billing address", "billing address line 1", "billing street", "bill address 1",
       "bill to 1", "baddr1", "address line1", "addr1", "mailing address"),
    _f("address_line2", "Address line 2", "address line 2", "address 2", "address2", "billing address line 2",
       "bill address 2", "bill to 2", "baddr2", "address line2", "addr2", "suite", "unit"),
    _f("city", "City", "city", "town", "billing city", "billing address city", "bill city", "city town"),
    _f("region", "State / region", "state", "region", "province", "state province", "state region",
       "billing state", "billing address state", "bill state", "county", "state province region"),
    _f("postal_code", "Postal code", "postal code", "zip", "zip code", "zipcode", "postcode", "post code",
       "billing zip", "billing postal code", "billing address postal code", "bill zip"),
    _f("country", "Country", "country", "billing country", "billing address country", "bill country"),
    _f("currency", "Currency", "currency", "currency code", "curr",
       hint="a three-letter code such as USD; blank: the company's"),
    _f("tax_rate", "Tax rate (%)", "tax rate", "tax", "tax percent", "tax rate percent", "sales tax rate",
       "vat rate", "gst rate", "tax %", hint="8.25 or 8.25%; 0 for tax-exempt"),
    _f("payment_terms_days", "Payment terms", "payment terms", "terms", "term", "net terms", "terms days",
       "payment terms days", "due days", hint="days, or Net 30, or Due on receipt"),
    _f("autopay", "Autopay", "autopay", "auto pay", "autopay enabled", "auto charge", "autocharge",
       hint="yes or no"),
    _f("autopay_discount", "Autopay discount (%)", "autopay discount", "autopay discount percent",
       "auto pay discount"),
    _f("autopay_cap", "Autopay cap", "autopay cap", "autopay limit", "auto pay cap"),
    _f("notes", "Notes", "notes", "note", "notepad", "comments", "comment", "memo", "description"),
)

AGREEMENT_FIELDS: tuple[ImportField, ...] = (
    _f("client", "Client (name or e-mail)", "client", "client name", "company", "company name", "customer",
       "customer name", "account", "account name", "organization", "organization name", "client email",
       "billing email", required=True, hint="an existing client's name or billing e-mail"),
    _f("name", "Agreement name", "agreement", "agreement name", "contract", "contract name", "service agreement",
       "plan", "plan name", "recurring invoice", "recurring service", "name", "agreement type", required=True),
    _f("frequency", "Billing frequency", "frequency", "billing frequency", "billing cycle", "bill cycle",
       "billing period", "period", "interval", "recurrence", "billing interval",
       hint="monthly, quarterly or annual; blank: monthly"),
    _f("start_date", "Start date", "start date", "start", "starts", "effective date", "begin date",
       "agreement start", "contract start", "start date of contract", required=True),
    _f("end_date", "End date", "end date", "end", "ends", "expiration date", "expiry date", "expires",
       "agreement end", "contract end", "end date of contract"),
    _f("notes", "Agreement notes", "notes", "agreement notes", "memo", "comments"),
    _f("description", "Line description", "description", "line description", "item", "item name", "product",
       "product name", "service", "service name", "addition", "product description", "item description",
       "line", "line item", required=True),
    _f("quantity", "Quantity", "quantity", "qty", "units", "seats", "count", "quantity billed"),
    _f("unit_price", "Unit price", "unit price", "price", "rate", "unit cost", "amount each", "price each",
       "sales price", "unit rate", "price per unit", "unit amount", "list price", "monthly price",
       required=True, hint="1250.00 or $1,250.00"),
    _f("taxable", "Taxable", "taxable", "tax", "taxed", "is taxable", "tax code", "sales tax code",
       hint="yes or no; blank: yes"),
)

FIELDS = {"clients": CLIENT_FIELDS, "agreements": AGREEMENT_FIELDS}

# Field -> column index in the file's headers.
ColumnMapping = dict[str, int]


def fields_for(kind: str) -> tuple[ImportField, ...]:
    try:
        return FIELDS[kind]
    except KeyError:
        raise ValueError(f"unknown import kind {kind!r}") from None


def normalise_header(text: str) -> str:
    """"Company Name", "company_name", "COMPANY-NAME:" -> "companyname" (accents kept, case dropped)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = text.replace("e-mail", "email")
    return re.sub(r"[\W_]+", "", text)


def guess_mapping(kind: str, headers: Sequence[str], table: CsvTable | None = None) -> ColumnMapping:
    """The likeliest column for each field, each column used at most once.

    Fields are tried in order of their aliases' strength: an exact alias match wins over a
    later field's weaker one ("Company" is the client's name, not its contact).  With the
    file's rows at hand, a QuickBooks "Bill to 1" that only repeats the client's name is
    passed over for the street in "Bill to 2".
    """
    fields = fields_for(kind)
    normal = [normalise_header(h) for h in headers]
    # Repeats of a header ("Phone (2)") are never guessed; the first one is.
    repeated = {i for i, h in enumerate(headers) if re.search(r" \(\d+\)$", h) and
                normalise_header(re.sub(r" \(\d+\)$", "", h)) in normal[:i]}
    candidates: list[tuple[int, int, str, int]] = []  # (alias rank, field order, field key, column)
    for order, f in enumerate(fields):
        for rank, alias in enumerate(f.aliases):
            key = normalise_header(alias)
            for col, n in enumerate(normal):
                if col not in repeated and n == key:
                    candidates.append((rank, order, f.key, col))
    candidates.sort()
    mapping: ColumnMapping = {}
    used: set[int] = set()
    for _rank, _order, key, col in candidates:
        if key in mapping or col in used:
            continue
        mapping[key] = col
        used.add(col)
    if kind == "clients" and table is not None:
        names = _name_columns(normal, repeated)
        _prefer_filled_name(mapping, names, table)
        _skip_name_in_bill_to(mapping, headers, names, table)
    return mapping


def _name_columns(normal: Sequence[str], repeated: set[int]) -> list[int]:
    """Columns whose header is one of the client name's, strongest alias first."""
    aliases = [normalise_header(a) for a in CLIENT_FIELDS[0].aliases]
    found = [(aliases.index(n), col) for col, n in enumerate(normal) if n in aliases and col not in repeated]
    return [col for _rank, col in sorted(found)]


def _prefer_filled_name(mapping: ColumnMapping, names: list[int], table: CsvTable) -> None:
    """QuickBooks has "Company" (blank for a person) and "Customer" (always filled): take a filled one."""
    current = mapping.get("legal_name")
    if current is None or len(names) < 2 or all(r.cells[current].strip() for r in table.records):
        return
    for col in names:
        if col != current and all(r.cells[col].strip() for r in table.records):
            taken_by = next((k for k, c in mapping.items() if c == col), None)
            if taken_by is not None:
                mapping.pop(taken_by)
            mapping["legal_name"] = col
            return


def _skip_name_in_bill_to(mapping: ColumnMapping, headers: Sequence[str], names: list[int],
                          table: CsvTable) -> None:
    """QuickBooks Desktop's "Bill to 1" usually repeats the customer's name: use 2 and 3 for the street."""
    line1 = mapping.get("address_line1")
    if line1 is None or not names or normalise_header(headers[line1]) != "billto1":
        return
    rows = [r for r in table.records[:50] if r.cells[line1].strip()]
    repeats = sum(1 for r in rows
                  if r.cells[line1].strip().casefold() in {r.cells[c].strip().casefold() for c in names})
    if not rows or repeats * 2 < len(rows):
        return
    by_name = {normalise_header(h): i for i, h in enumerate(headers)}
    mapping.pop("address_line1")
    mapping.pop("address_line2", None)
    if "billto2" in by_name:
        mapping["address_line1"] = by_name["billto2"]
    if "billto3" in by_name:
        mapping["address_line2"] = by_name["billto3"]


def find_column(headers: Sequence[str], name: str) -> int | None:
    """The column a person named: its header (any case or spacing), or its number ("#3" or "3")."""
    wanted = name.strip()
    for i, h in enumerate(headers):
        if h == wanted:
            return i
    key = normalise_header(wanted)
    matches = [i for i, h in enumerate(headers) if normalise_header(h) == key]
    if len(matches) == 1:
        return matches[0]
    m = re.fullmatch(r"#?(\d+)", wanted)
    if m and 1 <= int(m.group(1)) <= len(headers):
        return int(m.group(1)) - 1
    return None


class MappingError(ValueError):
    """A mapping that cannot work; the message says why and what the columns are."""


def _columns_text(headers: Sequence[str]) -> str:
    return ", ".join(f"“{h}”" for h in headers)


def apply_overrides(kind: str, headers: Sequence[str], base: ColumnMapping,
                    overrides: Mapping[str, str | None]) -> ColumnMapping:
    """`base` with the person's choices: field -> column name or number; None or "" ignores the field."""
    fields = {f.key: f for f in fields_for(kind)}
    by_label = {normalise_header(f.label): f.key for f in fields.values()}
    mapping = dict(base)
    problems: list[str] = []
    for raw_field, column in overrides.items():
        key = raw_field.strip()
        if key not in fields:
            key = by_label.get(normalise_header(raw_field), "")
        if not key:
            problems.append(f"There is no field “{raw_field}” in a {kind} import; the fields are "
                            f"{', '.join(fields)}.")
            continue
        if not column or not column.strip():
            mapping.pop(key, None)
            continue
        col = find_column(headers, column)
        if col is None:
            problems.append(f"The file has no column “{column}” (for {key}); its columns are {_columns_text(headers)}.")
            continue
        # One column feeds one field: taking it away from another field that had it by guess.
        for other, c in list(mapping.items()):
            if c == col and other != key and other not in overrides:
                mapping.pop(other)
        mapping[key] = col
    if problems:
        raise MappingError(" ".join(problems))
    return mapping


def parse_map_options(items: Sequence[str]) -> dict[str, str | None]:
    """`--map FIELD=COLUMN` options ("FIELD=" ignores the field)."""
    out: dict[str, str | None] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip():
            raise MappingError(f"“{item}” is not FIELD=COLUMN (for example --map legal_name=\"Company Name\").")
        out[field.strip()] = column.strip() or None
    return out


def check_mapping(kind: str, headers: Sequence[str], mapping: ColumnMapping) -> list[str]:
    """Sentences for each required field that has no column, naming the file's columns."""
    missing = [f for f in fields_for(kind) if f.required and f.key not in mapping]
    out: list[str] = []
    for f in missing:
        option = f"--map {f.key}=COLUMN"
        out.append(f"No column gives the {f.label.lower()} (a required field). The file's columns are "
                   f"{_columns_text(headers)}; choose one (on the command line: {option}).")
    return out
