"""The residents' meldpunt: a public HTML form at ``/meldpunt`` that files a neighbourhood report.

The form is served by the hub's HTTP role beside, and apart from, the operators' console: it
needs no session and sets no cookie. A posted report is handed to the ingest endpoint in-process
(``POST /ingest/bewoners`` with the meldpunt's own token, which never reaches the browser), so it
goes through the same token check, rate limit, screening and mapping as any posted record.

What it does not do, on purpose:

- **It keeps nothing of the reporter.** The form asks no name, e-mail address or phone number
  and refuses a post that carries a field it does not ask (422, nothing published). The record it
  forwards holds the form's fields and a random report number, nothing of the request: no
  address, no headers, no time of posting beyond the date the resident gives. Nothing here logs
  a request (and the HTTP role runs uvicorn without an access log).
- **It does not trust a cross-site post.** A post whose ``Origin`` is another host, or whose
  ``Sec-Fetch-Site`` says ``cross-site``, is refused (403); every form carries a signed,
  time-limited form token (HMAC under a key made at start-up, no cookie needed), so a report
  cannot be filed from a page elsewhere or a form older than two hours.
- **It limits each client address** to ``SIGNALHUB_MELDPUNT_REPORTS_PER_HOUR`` posts an hour
  (429 with ``Retry-After``); the limiter holds only a keyed hash of the address
  (:class:`~signalhub.connector.ratelimit.RateLimiter`).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from signalhub.connector.ratelimit import RateLimiter

__all__ = ["CONNECTOR", "FORM_FIELDS", "meldpunt_routes"]

#: The connector the form files its reports with (``connectors/bewoners.toml``).
CONNECTOR = "bewoners"
#: The fields the form asks, and the only ones a post may carry (besides its form token).
FORM_FIELDS = (
    "soort",
    "straat",
    "postcodegebied",
    "buurtcode",
    "tijdstip",
    "hoe_vaak",
    "waargenomen_op",
    "omschrijving",
)
MAX_FORM_BYTES = 16 * 1024
FORM_TOKEN_TTL_S = 2 * 3600
_FORM_PROOF = "formulier"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_CHOICES = {
    "soort": (
        ("drugshandel", "Drugshandel op een vaste plek"),
        ("intimidatie", "Intimidatie"),
        ("hennepteelt", "Vermoeden van hennepteelt"),
        ("overlast", "Overlast"),
    ),
    "tijdstip": (
        ("onbekend", "Weet ik niet"),
        ("ochtend", "Ochtend (6-12 uur)"),
        ("middag", "Middag (12-18 uur)"),
        ("avond", "Avond (18-24 uur)"),
        ("nacht", "Nacht (0-6 uur)"),
        ("wisselend", "Wisselend"),
    ),
    "hoe_vaak": (
        ("onbekend", "Weet ik niet"),
        ("eenmalig", "Eén keer"),
        ("vaker", "Een paar keer"),
        ("wekelijks", "Elke week"),
        ("dagelijks", "Elke dag"),
    ),
}


class _FormTokens:
    """Signed issue times: proof that a post comes from a form this process served lately."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._key = secrets.token_bytes(32)
        self._clock = clock

    def issue(self) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._sign(issued)}"

    def valid(self, token: str) -> bool:
        issued, _, signature = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(signature, self._sign(issued)):
            return False
        return 0 <= self._clock() - int(issued) <= FORM_TOKEN_TTL_S

    def _sign(self, issued: str) -> str:
        return hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()


class _Meldpunt:
    def __init__(
        self,
        ingest: ASGIApp,
        token: SecretStr | None,
        limiter: RateLimiter,
        clock: Callable[[], float],
    ) -> None:
        self._ingest = ingest
        self._token = token
        self._limiter = limiter
        self._forms = _FormTokens(clock)

    async def form(self, request: Request) -> HTMLResponse:
        if self._token is None:
            return _closed()
        return _page(_form_html(self._forms.issue()))

    async def submit(self, request: Request) -> HTMLResponse:
        if self._token is None:
            return _closed()
        if _cross_site(request):
            return _page(_message("Deze melding komt niet van dit formulier."), 403)
        # The address is used for this count only: hashed by the limiter, never kept or logged.
        wait = self._limiter.acquire(request.client.host if request.client else "")
        if wait is not None:
            text = "U heeft veel meldingen gedaan. Probeer het later opnieuw."
            return _page(_message(text), 429, {"Retry-After": str(int(wait))})
        fields = await _read_form(request)
        if fields is None:
            return _page(_message("Het formulier kon niet worden gelezen."), 400)
        if not self._forms.valid(fields.pop(_FORM_PROOF, "")):
            text = "Het formulier is verlopen. Laad de pagina opnieuw en vul het nog eens in."
            return _page(_message(text), 400)
        extra = sorted(set(fields) - set(FORM_FIELDS))
        if extra:
            text = (
                "Dit formulier vraagt geen naam, e-mailadres of andere gegevens over personen "
                "en neemt alleen zijn eigen velden aan."
            )
            return _page(_message(text), 422)
        record: dict[str, Any] = {k: v.strip() for k, v in fields.items() if v.strip()}
        # Random letters: no digits, so no report number can ever look like a BSN or a phone.
        record["meldingnummer"] = "M-" + "".join(secrets.choice(_LETTERS) for _ in range(10))
        return await self._file(record, self._token)

    async def _file(self, record: Mapping[str, Any], token: SecretStr) -> HTMLResponse:
        """Post the report to the ingest endpoint in-process, with nothing of the request."""
        transport = httpx.ASGITransport(app=self._ingest)
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            answer = await client.post(f"/ingest/{CONNECTOR}", json=[record], headers=headers)
        if answer.status_code == 200:
            number = html.escape(str(record["meldingnummer"]))
            text = f"Dank u. Uw melding is ontvangen onder nummer <strong>{number}</strong>."
            return _page(_message(text, escaped=True))
        if answer.status_code == 422 and answer.json().get("rejected"):
            reason = str(answer.json()["rejected"][0]["reason"])
            return _page(_message(f"De melding is niet aangenomen: {reason}"), 422)
        if answer.status_code == 429:
            text = "Het meldpunt is nu erg druk. Probeer het over een minuut opnieuw."
            retry = answer.headers.get("Retry-After", "60")
            return _page(_message(text), 429, {"Retry-After": retry})
        text = "Het meldpunt kan uw melding nu niet aannemen. Probeer het later opnieuw."
        return _page(_message(text), 503, {"Retry-After": "60"})


def _cross_site(request: Request) -> bool:
    """Whether the browser says the post comes from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


async def _read_form(request: Request) -> dict[str, str] | None:
    """The url-encoded fields of the post (last value wins), or None when it is not one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


def _options(field: str) -> str:
    return "".join(
        f'<option value="{value}">{html.escape(label)}</option>' for value, label in _CHOICES[field]
    )


def _form_html(form_token: str) -> str:
    return f"""<h1>Meldpunt bewoners</h1>
<p>Ziet u in uw buurt iets wat niet klopt? Meld het hier. Uw melding gaat over een plek en wat
daar gebeurt, niet over personen. Wij vragen niet wie u bent en bewaren dat ook niet: geen naam,
geen e-mailadres, geen IP-adres. Noem ook geen namen of telefoonnummers van anderen; een
BSN, telefoonnummer of e-mailadres in uw tekst halen wij weg.</p>
<p>Bij spoed of gevaar: bel 112.</p>
<form method="post" action="/meldpunt">
<input type="hidden" name="{_FORM_PROOF}" value="{html.escape(form_token)}">
<label>Wat wilt u melden?<br><select name="soort" required>{_options("soort")}</select></label>
<label>Straat of plein<br><input name="straat" maxlength="80"></label>
<label>Postcode (4 cijfers)<br><input name="postcodegebied" maxlength="7"
 pattern="[1-9][0-9]{{3}}( ?[A-Za-z]{{2}})?"></label>
<label>Wanneer zag u het (datum)?<br><input type="date" name="waargenomen_op" required></label>
<label>Hoe laat meestal?<br><select name="tijdstip">{_options("tijdstip")}</select></label>
<label>Hoe vaak?<br><select name="hoe_vaak">{_options("hoe_vaak")}</select></label>
<label>Wat ziet u? (zonder namen)<br><textarea name="omschrijving" rows="6" maxlength="2000">
</textarea></label>
<button type="submit">Melding versturen</button>
</form>"""


def _message(text: str, *, escaped: bool = False) -> str:
    body = text if escaped else html.escape(text)
    return f'<h1>Meldpunt bewoners</h1>\n<p>{body}</p>\n<p><a href="/meldpunt">Terug</a></p>'


def _page(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    page = (
        '<!doctype html>\n<html lang="nl"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Meldpunt bewoners</title><style>body{font-family:sans-serif;max-width:40em;"
        "margin:2em auto;padding:0 1em}label{display:block;margin:1em 0}"
        "input,select,textarea{width:100%}</style></head><body>\n"
        f"{body}\n</body></html>\n"
    )
    return HTMLResponse(page, status_code=status, headers={**_HEADERS, **(headers or {})})


def _closed() -> HTMLResponse:
    text = "Het meldpunt is nu gesloten. Bel bij spoed of gevaar 112."
    return _page(_message(text), 503)


def meldpunt_routes(
    ingest: ASGIApp,
    token: SecretStr | None,
    *,
    reports_per_hour: int,
    clock: Callable[[], float] = time.time,
) -> list[BaseRoute]:
    """``GET``/``POST /meldpunt``: the public form, filing through ``ingest`` with ``token``.

    ``ingest`` is an ASGI app serving the ingest route (the same endpoint the hub mounts, so the
    token's rate limit is one); without a token (``SIGNALHUB_INGEST_TOKEN_BEWONERS`` unset) the
    meldpunt answers 503, closed.
    """
    limiter = RateLimiter(reports_per_hour, 3600.0, clock=clock)
    meldpunt = _Meldpunt(ingest, token, limiter, clock)
    return [
        Route("/meldpunt", meldpunt.form, methods=["GET"]),
        Route("/meldpunt", meldpunt.submit, methods=["POST"]),
    ]
