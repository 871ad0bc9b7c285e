"""``signalhub subscribe`` and ``signalhub subscriber ...``: a subscriber's view, from a terminal.

``subscribe NAME`` prints what one subscriber received, one line per delivery: JSON Lines with
``--json``, else a summary showing the clear fields, the pseudonyms and the names of the withheld
fields (never more than the subscriber itself received). ``subscriber token NAME`` issues or
rotates a pull-API token and prints it once; ``subscriber webhook-secret NAME`` prints (creating
on first use) the secret a webhook receiver verifies signatures with.
"""

from __future__ import annotations

import json

import click

from signalhub.broker.connect import connect
from signalhub.cli import current_settings
from signalhub.delivery.catalog import ViewSchemaCatalog
from signalhub.delivery.reader import DeliveredRecord, read_deliveries
from signalhub.delivery.secrets import SubscriberSecrets
from signalhub.schema.registry import SchemaRegistry
from signalhub.subscriptions import load_subscriptions, subscribers

__all__ = ["subscribe", "subscriber_group", "summary_line"]


def _known_subscriber(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """Only subscribers named in the subscriptions file (this also keeps topic names sane)."""
    settings = current_settings()
    known = subscribers(load_subscriptions(settings.subscriptions_file))
    if name not in known:
        raise click.BadParameter(
            f"{name!r} has no subscription in {settings.subscriptions_file} — "
            f"known: {', '.join(known) or 'none'}"
        )
    return name


def _short(value: object, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_line(delivered: DeliveredRecord) -> str:
    """One readable line: when, type, delivery id, clear fields, generalised fields (with the
    method), pseudonyms, withheld names."""
    record = delivered.record
    envelope = record.get("envelope") or {}
    payload = record.get("payload") or {}
    withheld = (record.get("delivery") or {}).get("withheld") or []
    pseudonymised = set(delivered.pseudonymised_fields())
    generalised = delivered.generalised_fields()
    clear = [
        f"{k}={_short(v)}"
        for k, v in payload.items()
        if k not in pseudonymised and k not in generalised
    ]
    general = [f"{k}={v}({generalised[k]})" for k, v in payload.items() if k in generalised]
    pseudo = [f"{k}={v}" for k, v in payload.items() if k in pseudonymised]
    parts = [
        str(envelope.get("registered_at", "?")),
        delivered.signal_type,
        delivered.delivery_id,
        f"from={envelope.get('source_agency', '?')}",
        f"clear[{' '.join(clear)}]",
        f"generalised[{' '.join(general)}]",
        f"pseudonyms[{' '.join(pseudo)}]",
        f"withheld[{','.join(withheld)}]",
    ]
    return " ".join(parts)


@click.command("subscribe")
@click.argument("name", callback=_known_subscriber)
@click.option(
    "--from-beginning/--follow",
    "from_beginning",
    default=True,
    help="Print every delivery so far and exit (default), or keep following new ones.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (JSON Lines).")
@click.option("--dedupe/--no-dedupe", default=True, help="Skip repeated delivery ids.")
@click.option("--idle-ms", default=1500, show_default=True, help="Quiet time that ends a read.")
def subscribe(name: str, from_beginning: bool, as_json: bool, dedupe: bool, idle_ms: int) -> None:
    """Print subscriber NAME's deliveries (the topic deliveries.NAME), decoded, one per line.

    Both modes start at the first delivery; --follow then waits for new ones until Ctrl-C.
    Reads the Kafka in SIGNALHUB_BOOTSTRAP_SERVERS, or the embedded broker of a running
    ``signalhub up`` (the same state directory).
    """
    settings = current_settings()
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    # A broker started here would be a new, empty one: there would be nothing to show.
    with (
        connect(settings, require_hub=True) as bootstrap,
        ViewSchemaCatalog(bootstrap, registry) as catalog,
    ):
        catalog.refresh()
        for delivered in read_deliveries(
            bootstrap,
            name,
            catalog,
            idle_ms=idle_ms,
            follow=not from_beginning,
            dedupe=dedupe,
        ):
            line = json.dumps(delivered.to_json(), ensure_ascii=False) if as_json else None
            click.echo(line or summary_line(delivered))


@click.group("subscriber")
def subscriber_group() -> None:
    """Manage a subscriber's credentials (pull-API token, webhook secret)."""


@subscriber_group.command("token")
@click.argument("name", callback=_known_subscriber)
def token(name: str) -> None:
    """Issue or rotate NAME's pull-API token and print it — the only time it is shown.

    The previous token stops working at once; the hub keeps only a SHA-256 of the new one.
    """
    issued = SubscriberSecrets.from_settings(current_settings()).issue_token(name)
    click.echo(issued)
    click.echo(
        f"This is {name}'s pull-API token; it is not stored and will not be shown again.",
        err=True,
    )


@subscriber_group.command("webhook-secret")
@click.argument("name", callback=_known_subscriber)
@click.option("--rotate", is_flag=True, help="Replace the secret (the old one stops verifying).")
def webhook_secret(name: str, rotate: bool) -> None:
    """Print NAME's webhook signing secret (created on first use) for its receiver."""
    store = SubscriberSecrets.from_settings(current_settings())
    click.echo(store.rotate_webhook_secret(name) if rotate else store.webhook_secret(name))
