"""``embedops serve`` and ``embedops keys create|list|rotate|revoke``."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import TYPE_CHECKING

import typer

from embedops.cli._common import print_json, workspace

if TYPE_CHECKING:
    from embedops.serve.keys import KeyInfo


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``keys`` group to ``app``."""
    app.command("serve")(serve)
    keys = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
    app.add_typer(keys, name="keys")
    keys.command("create")(keys_create)
    keys.command("list")(keys_list)
    keys.command("rotate")(keys_rotate)
    keys.command("revoke")(keys_revoke)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without API keys (every caller is admin); only on a "
        "loopback host."),
    max_batch: int = typer.Option(256, help="Most texts, items or ids per request."),
    max_text_chars: int = typer.Option(8192, help="Longest text accepted, in characters."),
    max_body_bytes: int = typer.Option(4 * 1024 * 1024, help="Largest request body."),
    max_k: int = typer.Option(1000, help="Largest k a search may ask for."),
    cache_size: int = typer.Option(10_000, help="Query embeddings kept in memory (0: off)."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    warmup: bool = typer.Option(True, help="Load indexes and run one query each at start."),
    graceful_timeout: float = typer.Option(10.0, help="Seconds to drain requests on SIGTERM."),
    workers: int = typer.Option(1, help="Server processes (each with its own cache/metrics)."),
    inline_search: bool = typer.Option(
        False, help="Answer searches on the event loop (no thread hand-off)."
    ),
    inline_cheap_search: bool = typer.Option(
        True, help="Answer cheap searches (dense, no filter, cached query or a vector, loaded "
        "index) on the event loop, the rest in the thread pool.",
    ),
    public_metrics: bool = typer.Option(
        False, "--public-metrics", help="Serve /metrics without a key (it names collections "
        "and counts items; by default it needs a read key)."),
    header_timeout: float = typer.Option(
        10.0, help="Seconds a client may take to send a request's headers."),
    body_timeout: float = typer.Option(
        30.0, help="Seconds a client may take to send a request's body."),
    rate_limit_read: str | None = typer.Option(
        None, help="Per-key limit of read keys, e.g. '20/second' or '10/second;300/minute' "
        "(default: none)."),
    rate_limit_write: str | None = typer.Option(
        None, help="Per-key limit of write keys (same notation; default: none)."),
    rate_limit_admin: str | None = typer.Option(
        None, help="Per-key limit of admin keys (same notation; default: none)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON line on stdout once the server listens (url, "
        "host, port, auth, workers, pid), e.g. to learn the port picked by --port 0."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) until SIGTERM or Ctrl-C."""
    from embedops.serve.server import run
    from embedops.serve.settings import ServeSettings

    settings = ServeSettings(
        home=str(workspace().home), host=host, port=port, auth=not no_auth,
        max_batch=max_batch, max_text_chars=max_text_chars, max_body_bytes=max_body_bytes,
        max_k=max_k, cache_size=cache_size, log_level=log_level, warmup=warmup,
        graceful_timeout_s=graceful_timeout, workers=workers, inline_search=inline_search,
        inline_cheap_search=inline_cheap_search, public_metrics=public_metrics,
        header_timeout_s=header_timeout, body_timeout_s=body_timeout,
        rate_limit_read=rate_limit_read, rate_limit_write=rate_limit_write,
        rate_limit_admin=rate_limit_admin,
    )
    if no_auth:
        if not is_loopback(host):
            raise typer.BadParameter(
                f"--no-auth makes every caller admin, so it is refused on {host!r}, which is "
                "not a loopback address; create keys ('embedops keys create --role read') and "
                "serve with auth, or bind 127.0.0.1 behind a proxy that authenticates",
                param_hint="'--host' with '--no-auth'",
            )
        typer.echo("warning: authentication is OFF; anyone who can connect is admin", err=True)

    def announce(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{shown}:{bound_port}"
        if as_json:
            line = {"event": "listening", "url": url, "host": bound_host, "port": bound_port,
                    "auth": not no_auth, "workers": workers, "pid": os.getpid()}
            sys.stdout.write(json.dumps(line) + "\n")  # one line, so a reader can stop there
            sys.stdout.flush()
        else:
            typer.echo(f"embedops serving on {url} (API docs at {url}/docs, console at "
                       f"{url}/ui); Ctrl-C stops it", err=True)

    run(settings, announce)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for the
    wildcard addresses, other names and everything else."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` (or plain seconds) in seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration; write e.g. 30d, 12h, 90m or 45s")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def keys_create(
    role: str = typer.Option(..., "--role", help="read, write or admin."),
    name: str | None = typer.Option(None, "--name", help="A label for the key."),
    collection: list[str] | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--collection", help="Scope the key to this collection (repeatable)."),
    prefix: list[str] | None = typer.Option(  # noqa: B008
        None, "--prefix", help="Scope the key to collections named with this prefix "
        "(repeatable; a tenant's collections)."),
    expires: str | None = typer.Option(None, "--expires", help="Expire after e.g. 30d, 12h."),
    rate_limit: str | None = typer.Option(
        None, "--rate-limit", help="This key's own rate limit, e.g. '5/second;100/minute'."),
    max_items: int | None = typer.Option(
        None, "--max-items", help="Most items stored in the key's collections."),
    tokens_per_day: int | None = typer.Option(
        None, "--tokens-per-day", help="Most embed tokens per UTC day."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the key and its record as one JSON object."),
) -> None:
    """Create a key and print it once (only a salted hash is stored)."""
    import time

    from embedops.engine import audit
    from embedops.serve.keys import KeyStore

    ws = workspace()
    scoped = bool(collection) or bool(prefix)
    key, info = KeyStore(ws).create(
        role, name, collections=collection if scoped else None,
        prefixes=prefix if scoped else None,
        expires_at=time.time() + parse_duration(expires) if expires else None,
        rate_limit=rate_limit, max_items=max_items, tokens_per_day=tokens_per_day,
    )
    audit.record(ws, "key.create", _who(), key_id=info.id, role=info.role, name=info.name,
                 collections=info.collections, prefixes=info.prefixes,
                 expires_at=info.expires_at)
    if as_json:
        print_json({"key": key, **_record(info)})
        return
    typer.echo(f"created {info.role} key {info.id} ({info.name}); it is shown only now:", err=True)
    typer.echo(key)


def _record(info: KeyInfo) -> dict[str, object]:
    """A key's stored record (it holds neither the key nor its hash) with its state."""
    return {**vars(info), "active": info.active}


def keys_rotate(
    key_id: str = typer.Argument(..., help="The key id (see 'keys list')."),
    overlap: str = typer.Option("1d", "--overlap", help="How long the old key stays valid."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the new key and both records as one JSON object."),
) -> None:
    """A new key for the same principal; the old one stays valid for the overlap, then expires."""
    from embedops.engine import audit
    from embedops.serve.keys import KeyStore

    ws = workspace()
    key, new, old = KeyStore(ws).rotate(key_id, parse_duration(overlap))
    audit.record(ws, "key.rotate", _who(), key_id=old.id, new_key_id=new.id,
                 old_expires_at=old.expires_at)
    if as_json:
        print_json({"key": key, "new": _record(new), "old": _record(old)})
        return
    typer.echo(f"rotated {old.id} -> {new.id} ({new.name}); the new key is shown only now:",
               err=True)
    typer.echo(key)


def keys_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """List keys (ids, names, roles, state); never the keys themselves."""
    from embedops.serve.keys import KeyStore

    rows = KeyStore(workspace()).list()
    if as_json:
        print_json([_record(k) for k in rows])
        return
    for k in rows:
        state = "active" if k.active else "revoked" if k.revoked_at else "expired"
        scope = ",".join([*(k.collections or []), *(f"{p}*" for p in k.prefixes or [])])
        scope = scope if k.scoped else "*"
        sys.stdout.write(f"{k.id}  {k.role:<5}  {state:<7}  {k.name}  scope={scope or '-'}\n")


def keys_revoke(
    key_id: str = typer.Argument(..., help="The key id (see 'keys list')."),
    as_json: bool = typer.Option(False, "--json", help="Print the revoked key's record."),
) -> None:
    """Revoke a key; a running server refuses it from the next request on."""
    from embedops.engine import audit
    from embedops.serve.keys import KeyStore

    ws = workspace()
    info = KeyStore(ws).revoke(key_id)
    audit.record(ws, "key.revoke", _who(), key_id=info.id)
    if as_json:
        print_json(_record(info))
        return
    typer.echo(f"revoked {info.id} ({info.name})")
