"""The ``agentcache`` commands (click): inspect, explain and manage a store from a shell.

Each command opens the store named by ``--url`` (else ``$AGENTCACHE_URL``, else the default SQLite
file), runs one coroutine and closes it. The work is done by ``admin``, ``explain`` and
``transfer``; this module parses options and renders results through ``cli_output.Output``.
Errors agentcache raises on its own account become ``error: ...`` and exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from .. import _admin as admin
from .. import _transfer as transfer
from .. import codec
from .._options import resolve_url, store_from_setting
from .._version import __version__
from ..errors import AgentCacheError, ConfigurationError, StoreMissingError
from ..explain import Explanation, explain, material_of
from ..keys import normalize, stored_key, validate_namespace
from ..stores import Store, redact_url
from ..stores.base import Entry, namespace_of
from ..stores.capabilities import disk_usage_of, opens_existing, vacuumable
from ._output import STYLES, Output, human_bytes

__all__ = ["run"]

T = TypeVar("T")


@dataclass
class _Context:
    url: str | None
    output: Output
    store: Store | None  # given by the embedding program; not opened or closed here

    def run(self, work: Callable[[Store], Awaitable[T]], *, create: bool = False) -> T:
        """Open the store, run ``work`` on it, close it (``run`` reports agentcache errors)."""
        return asyncio.run(self._run(work, create))

    async def _run(self, work: Callable[[Store], Awaitable[T]], create: bool) -> T:
        if self.store is not None:
            return await work(self.store)
        store = store_from_setting(self.url)  # a bad $AGENTCACHE_URL is named as such
        existing = None if create else opens_existing(store)
        if existing is None:
            await store.open()
        else:
            try:
                await existing.open_existing()  # reading must not create a cache as a side effect
            except StoreMissingError as exc:
                url = redact_url(store.url)
                raise ConfigurationError(f"no cache at {url}: {exc} (another --url?)") from None
        try:
            return await work(store)
        finally:
            await store.aclose()


def run(argv: list[str], *, store: Store | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    try:
        cli.main(args=argv, prog_name="agentcache", standalone_mode=False, obj=store)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        sys.stderr.write("aborted\n")
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AgentCacheError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="agentcache", message="%(prog)s %(version)s")
@click.option("--url", help="Store URL (default: $AGENTCACHE_URL, else sqlite:///.agentcache/cache.db).")
@click.option(
    "--style",
    type=click.Choice(STYLES),
    default="auto",
    show_default=True,
    help="rich: tables, colours and progress bars; plain: text for scripts; auto: rich on a terminal.",
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, style: str) -> None:
    """Inspect, explain and manage an agentcache store."""
    ctx.obj = _Context(url=url, output=Output(style), store=ctx.obj)


def _ctx() -> _Context:
    obj = click.get_current_context().find_object(_Context)
    assert obj is not None
    return obj


def _age(text: str | None, now: float) -> float | None:
    return None if text is None else admin.parse_age(text, now)


def _checked_namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A ``-n/--namespace`` value, refused before any store is opened if it cannot be a namespace.

    A namespace is never a pattern: ``-n '*'`` must not reach a store as "every namespace".
    """
    if value is None:
        return None
    try:
        return validate_namespace(value)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


# -- stats -----------------------------------------------------------------------------------


@cli.command()
@click.option("--since", help="Only entries recorded since then: 2h, 7d, or an ISO date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(since: str | None, as_json: bool) -> None:
    """Entries, size, recorded hits and what they saved, by namespace, model and label."""
    ctx, now = _ctx(), time.time()

    async def work(store: Store) -> tuple[admin.Summary, int | None]:
        summary = await admin.summarize(store, now=now, since=_age(since, now))
        return summary, await _disk_usage(store)

    summary, disk = ctx.run(work)
    if as_json:
        ctx.output.json(
            {
                "store": redact_url(store_url(ctx)),
                "disk_bytes": disk,
                "total": summary.total.to_json(),
                **{
                    f"by_{dim}": {name: row.to_json() for name, row in rows.items()}
                    for dim, rows in summary.by.items()
                },
            }
        )
        return
    out, total = ctx.output, summary.total
    out.line(f"store         {redact_url(store_url(ctx))}")
    out.line(f"entries       {total.entries} ({total.expired} expired)")
    out.line(f"stored        {human_bytes(total.bytes)}")
    if disk is not None:
        out.line(f"on disk       {human_bytes(disk)}")
    out.line(f"hits          {total.hits} (calls saved)")
    out.line(f"saved time    {total.saved_seconds:.1f} s")
    if total.saved_input_tokens or total.saved_output_tokens:
        out.line(f"saved tokens  {total.saved_input_tokens} in, {total.saved_output_tokens} out")
    if total.saved_cost:
        out.line(f"saved cost    ${total.saved_cost:.4f}")
    columns = ["entries", "size", "hits", "saved s", "saved tokens", "saved $"]
    for dim, rows in summary.by.items():
        if not rows:
            continue
        out.line()
        table = [
            [
                name,
                str(row.entries),
                human_bytes(row.bytes),
                str(row.hits),
                f"{row.saved_seconds:.1f}",
                str(row.saved_input_tokens + row.saved_output_tokens),
                f"{row.saved_cost:.4f}",
            ]
            for name, row in sorted(rows.items(), key=lambda kv: -kv[1].entries)
        ]
        out.table([dim, *columns], table, title=f"by {dim}", numeric=columns)


async def _disk_usage(store: object) -> int | None:
    sized = disk_usage_of(store)
    return None if sized is None else await sized.disk_usage()


def store_url(ctx: _Context) -> str:
    """The URL of the store the command works on."""
    return ctx.store.url if ctx.store is not None else resolve_url(ctx.url)


# -- ls / show -------------------------------------------------------------------------------


@cli.command(name="ls")
@click.option("--namespace", "-n", callback=_checked_namespace, help="Only this namespace.")
@click.option("--model", help="Only entries of this model.")
@click.option("--label", help="Only entries with this label.")
@click.option("--older-than", help="Only entries recorded before: 7d, 2h, or an ISO date.")
@click.option("--newer-than", help="Only entries recorded since: 7d, 2h, or an ISO date.")
@click.option("--min-hits", type=click.IntRange(min=0), help="Only entries hit at least N times.")
@click.option("--max-hits", type=click.IntRange(min=0), help="Only entries hit at most N times.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True,
              help="At most N entries (0: all; --json lists all unless given).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (for scripts).")
def ls(
    namespace: str | None,
    model: str | None,
    label: str | None,
    older_than: str | None,
    newer_than: str | None,
    min_hits: int | None,
    max_hits: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List entries, newest first."""
    ctx, now = _ctx(), time.time()
    where = admin.EntryFilter(
        namespace=namespace,
        model=model,
        label=label,
        created_before=_age(older_than, now),
        created_after=_age(newer_than, now),
        min_hits=min_hits,
        max_hits=max_hits,
    )
    source = click.get_current_context().get_parameter_source("limit")
    if as_json and source is click.core.ParameterSource.DEFAULT:
        limit = 0

    found = ctx.run(lambda store: admin.select(store, where, limit))
    if as_json:
        ctx.output.json([_entry_json(key, entry, now) for key, entry in found])
        return
    # People read ages ("3h ago"); scripts and pipes get absolute UTC times.
    ages = ctx.output.rich
    rows = [
        [
            _short(key),
            str(entry.meta.get("model") or "-"),
            str(entry.meta.get("label") or "-"),
            _ago(now - entry.created_at) if ages else _when(entry.created_at),
            _expiry(entry, now, relative=ages),
            str(entry.hits),
            human_bytes(admin.entry_size(entry)),
        ]
        for key, entry in found
    ]
    ctx.output.table(
        ["key", "model", "label", "recorded" if ages else "recorded (UTC)", "expires", "hits", "size"],
        rows,
        numeric=["hits", "size"],
    )
    if limit and len(found) == limit:
        ctx.output.message(f"(first {limit}; --limit 0 lists all)")


@cli.command()
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(key: str, as_json: bool) -> None:
    """Show one entry: key material, value and metadata (KEY may be a hash prefix)."""
    ctx, now = _ctx(), time.time()

    async def work(store: Store) -> tuple[str, Entry]:
        return await admin.find_entry(store, key)

    resolved, entry = ctx.run(work)
    record = _entry_json(resolved, entry, now)
    record["material"] = material_of(entry)
    try:
        record["value"] = codec.decode(entry.value)
    except codec.CorruptValue as exc:
        record["value"] = None
        record["value_error"] = str(exc)
    if as_json:
        ctx.output.json(record)
        return
    out = ctx.output
    for name in ("key", "namespace", "recorded", "expires", "hits", "last_hit", "call_seconds"):
        out.line(f"{name:<13}{record.get(name)}")
    out.line(f"{'size':<13}{human_bytes(record['size'])}")
    out.line("meta")
    out.line(_indent(json.dumps(record["meta"], indent=2, ensure_ascii=False)))
    out.line("key material")
    if record["material"] is None:
        out.line("  (not stored: the cache ran with store_key_material=False)")
    else:
        out.line(_indent(json.dumps(record["material"], indent=2, ensure_ascii=False)))
    out.line("value")
    if "value_error" in record:
        out.line(f"  (cannot be decoded: {record['value_error']})")
    elif isinstance(record["value"], bytes):  # a bytes value, stored raw: JSON has no bytes
        out.line(_indent(repr(record["value"])))
    else:
        out.line(_indent(json.dumps(record["value"], indent=2, ensure_ascii=False)))


# -- explain ---------------------------------------------------------------------------------


@cli.command(name="explain")
@click.argument("source", required=False, type=click.File("r", encoding="utf-8"))
@click.option("--key", "stored", help="Explain a stored entry (a key or hash prefix) instead.")
@click.option("--namespace", "-n", default="default", show_default=True, callback=_checked_namespace,
              help="Namespace of the key material read from SOURCE.")  # fmt: skip
@click.option("--text", is_flag=True, help="SOURCE is a plain prompt (its final newline dropped), not JSON.")
@click.option("--limit", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many nearest entries to list.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def explain_command(
    source: Any, stored: str | None, namespace: str, text: bool, limit: int, as_json: bool
) -> None:
    """Why would this miss? The nearest stored entries to some key material, and what differs.

    SOURCE is a file holding the key material as JSON (as passed to the cache), or '-' for stdin.
    """
    ctx = _ctx()
    if (source is None) == (stored is None):
        raise click.UsageError("give key material (a FILE, or - for stdin) or --key, not both")
    material: Any = None
    if source is not None:
        raw = source.read()
        if text:
            material = raw[:-1] if raw.endswith("\n") else raw  # the newline echo and editors add
        else:
            try:
                material = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise click.UsageError(
                    f"{_name(source)} is not JSON ({exc}); pass --text for a plain prompt"
                ) from None

    async def work(store: Store) -> Explanation:
        if stored is not None:
            key, entry = await admin.find_entry(store, stored)
            known = entry.material is not None
            return await explain(store, key, material_of(entry), material_known=known, limit=limit)
        key = stored_key(material, namespace)
        return await explain(store, key, normalize(material), limit=limit)

    result = ctx.run(work)
    if as_json:
        ctx.output.json(result.to_json())
        return
    for line in result.render().splitlines():
        ctx.output.line(
            line, style=_EXPLAIN_STYLES.get(line[:9].strip(), "yellow" if " -> " in line else None)
        )


# Colours of the explain report's lines on a terminal, by their leading word.
_EXPLAIN_STYLES = {"nearest": "bold green", "differs": "bold", "note": "magenta", "searched": "dim"}


# -- deleting --------------------------------------------------------------------------------


@cli.command()
@click.argument("keys", nargs=-1, required=True)
def rm(keys: Sequence[str]) -> None:
    """Delete entries (full keys or hash prefixes)."""
    ctx = _ctx()

    async def work(store: Store) -> int:
        resolved = await admin.resolve_keys(store, keys)
        return await store.delete_many(sorted(set(resolved.values())))

    removed = ctx.run(work)
    ctx.output.message(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")


@cli.command()
@click.option("--namespace", "-n", callback=_checked_namespace,
              help="Only this namespace (default: every namespace).")  # fmt: skip
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def clear(namespace: str | None, yes: bool) -> None:
    """Delete every entry (of one namespace, or all); asks first unless --yes."""
    ctx = _ctx()
    what = f"namespace {namespace!r}" if namespace else "every namespace"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"refusing to clear {what} without --yes (stdin is not a terminal)")
        click.confirm(f"Delete all entries of {what} in {redact_url(store_url(ctx))}?", abort=True)
    removed = ctx.run(lambda store: store.clear(namespace))
    ctx.output.message(f"removed {removed} entr{'y' if removed == 1 else 'ies'} ({what})")


@cli.command()
@click.option("--namespace", "-n", callback=_checked_namespace, help="Only this namespace.")
@click.option("--older-than", help="Also entries recorded before: 30d, 12h, or an ISO date.")
@click.option("--max-size", help="Then evict least recently hit entries until at most SIZE remain (100MB).")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
def prune(namespace: str | None, older_than: str | None, max_size: str | None, dry_run: bool) -> None:
    """Delete expired entries, and optionally old ones and the least recently hit."""
    ctx, now = _ctx(), time.time()
    limit = None if max_size is None else admin.parse_size(max_size)

    async def work(store: Store) -> tuple[admin.PrunePlan, int]:
        plan = await admin.plan_prune(
            store, now=now, namespace=namespace, older_than=_age(older_than, now), max_size=limit
        )
        if dry_run or not plan.keys:
            return plan, 0
        with ctx.output.progress("pruning", len(plan.keys)) as advance:
            return plan, await admin.delete_in_batches(store, plan.keys, progress=advance)

    plan, removed = ctx.run(work)
    verb = "would remove" if dry_run else "removed"
    count = len(plan.keys) if dry_run else removed
    ctx.output.message(
        f"{verb} {count} entries: {len(plan.expired)} expired, {len(plan.old)} old, "
        f"{len(plan.evicted)} evicted for size; {human_bytes(plan.kept_bytes)} remain"
    )
    if dry_run and plan.keys:
        for key in plan.keys:
            ctx.output.line(key)


@cli.command()
def vacuum() -> None:
    """Give the space of deleted entries back to the file system (where the store can)."""
    ctx = _ctx()

    async def work(store: Store) -> tuple[int | None, int | None]:
        compactable = vacuumable(store)
        if compactable is None:
            return None, None
        before = await _disk_usage(store)
        with ctx.output.status("vacuuming"):
            await compactable.vacuum()
        return before, await _disk_usage(store)

    before, after = ctx.run(work)
    url = redact_url(store_url(ctx))
    if before is None and after is None:
        ctx.output.message(f"nothing to vacuum: {url} keeps no free space")
    else:
        ctx.output.message(f"vacuumed {url}: {human_bytes(before or 0)} -> {human_bytes(after or 0)}")


# -- export / import -------------------------------------------------------------------------


@cli.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--namespace", "-n", callback=_checked_namespace, help="Only this namespace.")
def export_command(file: str, namespace: str | None) -> None:
    """Write live entries to FILE.jsonl ('-': stdout) to share a warmed cache."""
    ctx, now = _ctx(), time.time()

    async def work(store: Store) -> int:
        with ctx.output.progress("exporting", None) as advance:
            if file == "-":
                return await transfer.write_export(
                    store, sys.stdout, namespace=namespace, now=now, progress=advance
                )
            with transfer.atomic_text_file(file) as out:
                return await transfer.write_export(store, out, namespace=namespace, now=now, progress=advance)

    count = ctx.run(work)
    ctx.output.message(f"exported {count} entries to {file}")


@cli.command(name="import")
# surrogateescape: bytes that are not UTF-8 reach read_export, which names their line.
@click.argument("file", type=click.File("r", encoding="utf-8", errors="surrogateescape"))
@click.option("--overwrite", is_flag=True, help="Replace entries that are already stored.")
@click.option(
    "--max-value-bytes",
    type=click.IntRange(min=1),
    default=codec.MAX_VALUE_BYTES,
    show_default=True,
    help="Refuse values larger than this (before compression), as AgentCache(max_value_bytes=) does.",
)
def import_command(file: Any, overwrite: bool, max_value_bytes: int) -> None:
    """Merge the entries of FILE.jsonl ('-': stdin); all or nothing, existing entries kept."""
    ctx, now = _ctx(), time.time()
    lines = file.readlines()
    with ctx.output.progress("checking", len(lines)) as advance:
        entries = transfer.read_export(lines, _name(file), progress=advance, max_value_bytes=max_value_bytes)

    async def work(store: Store) -> transfer.ImportResult:
        with ctx.output.status(f"writing {len(entries)} entries"):
            return await transfer.import_entries(store, entries, overwrite=overwrite, now=now)

    result = ctx.run(work, create=True)
    ctx.output.message(
        f"imported {result.imported} entries; kept {result.kept} already stored"
        f"{' (--overwrite replaces them)' if result.kept else ''}; "
        f"skipped {result.expired} expired"
    )


# -- rendering helpers -----------------------------------------------------------------------


def _entry_json(key: str, entry: Entry, now: float) -> dict[str, Any]:
    return {
        "key": key,
        "namespace": namespace_of(key),
        "model": entry.meta.get("model"),
        "label": entry.meta.get("label"),
        "recorded": _when(entry.created_at),
        "created_at": entry.created_at,
        "expires": _expiry(entry, now),
        "expires_at": entry.expires_at,
        "hits": entry.hits,
        "last_hit": _when(entry.last_hit_at) if entry.last_hit_at else None,
        "last_hit_at": entry.last_hit_at,
        "call_seconds": round(entry.call_seconds, 6),
        "size": admin.entry_size(entry),
        "has_material": entry.material is not None,
        "meta": dict(entry.meta),
    }


def _short(key: str) -> str:
    namespace, version, digest = key.split(":", 2)
    return f"{namespace}:{version}:{digest[:12]}"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def _expiry(entry: Entry, now: float, *, relative: bool = False) -> str:
    if entry.expires_at is None:
        return "never"
    if entry.is_expired(now):
        return "expired"
    return f"in {_ago(entry.expires_at - now)[:-4]}" if relative else _when(entry.expires_at)


def _ago(seconds: float) -> str:
    """``"42s ago"``, ``"5m ago"``, ``"3h ago"``, ``"12d ago"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(0, int(seconds))}s ago"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _name(stream: Any) -> str:
    name = getattr(stream, "name", None)
    return name if isinstance(name, str) else "<stdin>"
