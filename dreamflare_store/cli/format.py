"""How the command line shows things to people: sizes, times, tables, histories.

Everything here turns records into text and nothing else: no store access, no click
context. ``--json`` output does not come through here at all (it is the records' own
``to_dict()``), so these functions are free to change for readability.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..records import Content, Version
    from ..records.accounts import Analytics, ApiUsage, StorageUsage
    from ..records.outcomes import SyncReport, VerifyReport

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
RECENT_SECONDS = 7 * 24 * 3600  # within a week, "3 h ago" reads better than a date
MAX_CELL = 40  # wider cells (descriptions, long tag lists) are cut with an ellipsis


# -- values ----------------------------------------------------------------------------


def human_size(size: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, one decimal, bytes as a whole number."""
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
    "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2,
    "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip


def parse_size(text: str) -> int | None:
    """``"10GiB"`` -> 10737418240, ``"2GB"`` -> 2000000000, ``"none"`` -> None."""
    cleaned = text.strip().lower().replace(" ", "").replace("_", "")
    if cleaned == "none":
        return None
    number = cleaned.rstrip("kmgtib")
    unit = cleaned[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or value < 0 or value != value:
        raise InvalidArgument(f"{text!r} is not a size (bytes, or 500MiB, 2GB...) or none")
    return int(value * _SIZE_UNITS[unit])


def parse_time(iso: str) -> datetime:
    """A record's ISO 8601 UTC time (``...Z``) as an aware datetime."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def relative_time(iso: str | None, now: float | None = None) -> str:
    """``"5 min ago"`` within a week, else ``"2026-11-20 14:03"`` (UTC); ``"-"`` for None."""
    if iso is None:
        return "-"
    moment = parse_time(iso)
    seconds = (time.time() if now is None else now) - moment.timestamp()
    if seconds < -60 or seconds >= RECENT_SECONDS:
        return moment.strftime("%Y-%m-%d %H:%M")
    if seconds < 45:
        return "just now"
    for span, unit in ((86400, "day"), (3600, "h"), (60, "min")):
        if seconds >= span:
            count = round(seconds / span) if span == 60 else int(seconds // span)
            plural = "s" if unit == "day" and count != 1 else ""
            return f"{count} {unit}{plural} ago"
    return "1 min ago"


def full_time(iso: str | None, now: float | None = None) -> str:
    """``"2026-11-28 10:57:25 UTC (5 min ago)"``; ``"-"`` for None."""
    if iso is None:
        return "-"
    stamp = parse_time(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    relative = relative_time(iso, now)
    recent = relative.endswith("ago") or relative == "just now"
    return f"{stamp} ({relative})" if recent else stamp


def tag_text(tags: Sequence[str]) -> str:
    return ", ".join(tags) if tags else "-"


def short_hash(digest: str) -> str:
    return digest[:12]


def _cut(text: str, width: int = MAX_CELL) -> str:
    text = " ".join(text.split())  # a newline inside a cell would break the table
    return text if len(text) <= width else text[: width - 1] + "…"


# -- layouts ---------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; columns listed in ``right`` (numbers) align right."""
    right_set = set(right)
    body = [[_cut(str(cell)) for cell in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *body]:
        cells = [
            cell.rjust(width) if index in right_set else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """``label  value`` lines with the values in one column."""
    width = max((len(label) for label, _ in pairs), default=0)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in pairs)


# -- records ---------------------------------------------------------------------------


def media_text(mime: str, width: int | None, height: int | None) -> str:
    return f"{mime} ({width}x{height})" if width and height else mime


def content_details(content: Content, now: float | None = None) -> str:
    """Every field of one content, one per line."""
    return key_values(
        [
            ("id", content.content_id),
            ("filename", content.filename),
            ("path", content.path or "-"),
            ("type", media_text(content.mime_type, content.width, content.height)),
            ("size", f"{human_size(content.size)} ({content.size:,} bytes)"),
            ("hash", content.hash),
            ("description", content.description or "-"),
            ("tags", tag_text(content.tags)),
            ("version", content.version),
            ("owner", content.user_id),
            ("created", full_time(content.created_at, now)),
            ("updated", full_time(content.updated_at, now)),
            *generation_pairs(content.generation),
        ]
    )


# The generation record's fields as ``get`` shows them, in this order.
_GENERATION_LABELS = (
    ("generator", "generator"), ("prompt", "prompt"), ("negativePrompt", "negative"),
    ("model", "model"), ("modelHash", "model hash"), ("sampler", "sampler"),
    ("scheduler", "scheduler"), ("steps", "steps"), ("cfgScale", "cfg scale"),
    ("seed", "seed"), ("claimGenerator", "claimed by"),
)  # fmt: skip


def generation_pairs(record: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The lines of a generation record (none when there is none)."""
    if not record:
        return []
    pairs: list[tuple[str, Any]] = []
    for key, label in _GENERATION_LABELS:
        value = record.get(key)
        if value not in (None, ""):
            pairs.append((label, value))
    loras = record.get("loras") or []
    if loras:
        pairs.append(
            (
                "loras",
                ", ".join(
                    f"{lora.get('name')}" + (f":{lora['weight']:g}" if lora.get("weight") else "")
                    for lora in loras
                ),
            )
        )
    if record.get("aiGenerated") is not None:
        pairs.append(("ai generated", "yes" if record["aiGenerated"] else "no"))
    return pairs


def excerpt(text: str | None, width: int = 48) -> str:
    """The start of a prompt on one line."""
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def search_table(items: Sequence[Content], now: float | None = None) -> str:
    rows = [
        (
            item.content_id,
            item.filename,
            excerpt((item.generation or {}).get("prompt")),
            (item.generation or {}).get("model") or "-",
            tag_text(item.tags),
            relative_time(item.created_at, now),
        )
        for item in items
    ]
    headers = ("ID", "FILENAME", "PROMPT", "MODEL", "TAGS", "CREATED")
    return table(headers, rows)


def content_table(items: Sequence[Content], now: float | None = None) -> str:
    rows = [
        (
            item.content_id,
            item.filename,
            item.mime_type,
            human_size(item.size),
            item.version,
            tag_text(item.tags),
            relative_time(item.updated_at, now),
        )
        for item in items
    ]
    headers = ("ID", "FILENAME", "TYPE", "SIZE", "VER", "TAGS", "UPDATED")
    return table(headers, rows, right=(3, 4))


def _change_text(version: Version) -> str:
    """What one version did, in words: the fields it set and their new values."""
    parts = []
    for field in version.changes:
        if field == "file":
            verb = "created" if version.version == 1 else "new file"
            parts.append(
                f"{verb}: {human_size(version.size)} {version.mime_type}"
                f" ({short_hash(version.hash)})"
            )
        elif field == "filename":
            parts.append(f"filename: {version.filename}")
        elif field == "path":
            parts.append(f"path: {version.path}")
        elif field == "description":
            parts.append(f"description: {_cut(version.description or '-', 60)!s}")
        elif field == "tags":
            parts.append(f"tags: {tag_text(version.tags)}")
        else:
            parts.append(field)
    return "; ".join(parts) or "-"


def version_history(versions: Sequence[Version], now: float | None = None) -> str:
    """A content's history, oldest first: when, who, and what each version changed."""
    rows = [
        (f"v{version.version}", relative_time(version.created_at, now), version.user_id)
        for version in versions
    ]
    widths = [max((len(row[column]) for row in rows), default=0) for column in range(3)]
    lines = []
    for row, version in zip(rows, versions, strict=True):
        head = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(f"{head}  {_change_text(version)}")
    return "\n".join(lines)


def storage_text(usage: StorageUsage) -> str:
    if usage.quota_bytes is None:
        quota = "none"
    else:
        share = usage.history_bytes / usage.quota_bytes * 100 if usage.quota_bytes else 100.0
        quota = f"{human_size(usage.quota_bytes)} ({share:.1f}% used)"
    return key_values(
        [
            ("user", usage.user_id),
            ("contents", f"{usage.content_count:,}"),
            ("versions", f"{usage.version_count:,}"),
            ("current versions", f"{human_size(usage.bytes)} (logical size of each content now)"),
            (
                "stored",
                f"{human_size(usage.history_bytes)} (every version, each distinct file"
                " once: what the quota counts)",
            ),
            ("quota", quota),
        ]
    )


def api_usage_text(usage: ApiUsage, days: int = 14) -> str:
    """Totals, then calls per operation, then the last ``days`` days."""
    parts = [
        key_values(
            [
                ("user", usage.user_id),
                ("calls", f"{usage.total_calls:,} ({usage.errors:,} failed)"),
                ("bytes in", human_size(usage.bytes_in)),
                ("bytes out", human_size(usage.bytes_out)),
            ]
        )
    ]
    if usage.by_operation:
        rows = [
            (name, f"{cell['calls']:,}", f"{cell['errors']:,}", human_size(cell["bytesIn"]),
             human_size(cell["bytesOut"]))
            for name, cell in usage.by_operation.items()
        ]  # fmt: skip
        parts.append(table(("OPERATION", "CALLS", "FAILED", "IN", "OUT"), rows, right=(1, 2, 3, 4)))
    if usage.daily:
        rows = [
            (day["date"], f"{day['calls']:,}", f"{day['errors']:,}", human_size(day["bytesIn"]),
             human_size(day["bytesOut"]))
            for day in usage.daily[-days:]
        ]  # fmt: skip
        parts.append(table(("DATE", "CALLS", "FAILED", "IN", "OUT"), rows, right=(1, 2, 3, 4)))
    return "\n\n".join(parts)


def analytics_text(stats: Analytics, days: int = 14) -> str:
    """Totals, the most viewed contents (for all of a user's contents), the last days."""
    subject = ("content", stats.content_id) if stats.content_id else ("contents", "all yours")
    parts = [
        key_values(
            [
                ("user", stats.user_id),
                subject,
                ("views", f"{stats.views:,}"),
                ("downloads", f"{stats.downloads:,}"),
                ("bytes served", human_size(stats.bytes_served)),
                ("unique viewers", f"{stats.unique_viewers:,}"),
            ]
        )
    ]
    if stats.top_content:
        rows = [
            (item["contentId"], f"{item['views']:,}", f"{item['downloads']:,}")
            for item in stats.top_content
        ]
        parts.append(table(("MOST VIEWED", "VIEWS", "DOWNLOADS"), rows, right=(1, 2)))
    if stats.daily:
        days_rows = [
            (day["date"], f"{day['views']:,}", f"{day['downloads']:,}",
             human_size(day["bytesServed"]))
            for day in stats.daily[-days:]
        ]  # fmt: skip
        parts.append(table(("DATE", "VIEWS", "DOWNLOADS", "SERVED"), days_rows, right=(1, 2, 3)))
    return "\n\n".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def sync_text(report: SyncReport, sent: bool = True, received: bool = True) -> str:
    """``"sent 3 changes and 2 files (1.2 MiB)"``: only the directions the command moved
    (a push says nothing of receiving, which it never does)."""
    parts = []
    for verb, ops, blobs, nbytes, shown in (
        ("sent", report.ops_sent, report.blobs_sent, report.bytes_sent, sent),
        ("received", report.ops_received, report.blobs_received, report.bytes_received, received),
    ):
        if not shown:
            continue
        if ops or blobs:
            moved = f"{_count(ops, 'change')} and {_count(blobs, 'file')}"
            parts.append(f"{verb} {moved} ({human_size(nbytes)})")
        else:
            parts.append(f"{verb} nothing new")
    return "; ".join(parts) + "."


def verify_text(report: VerifyReport) -> str:
    """What verify checked, and its verdict, in a few lines."""
    verdict = (
        "No problems found." if report.ok else f"{_count(len(report.problems), 'problem')} found."
    )
    lines = [
        f"Checked {_count(report.blobs_checked, 'file')} ({human_size(report.bytes_checked)}"
        f" re-hashed), {_count(report.contents, 'content')},"
        f" {_count(report.versions, 'version')} and {_count(report.ops, 'change')}.",
    ]
    if report.remote_only:
        lines.append(
            f"{_count(report.remote_only, 'file')} only on a remote (not here, so not"
            " re-hashed): pull --blobs eager to keep them here."
        )
    lines.append(verdict)
    return "\n".join(lines)
