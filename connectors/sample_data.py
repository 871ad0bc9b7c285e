"""Deterministic sample data for the agency connectors and the residents' meldpunt.

A development tool, not part of the product: it needs Faker (a dev dependency) and writes the
files shipped in ``connectors/samples/``. Regenerate them with ``make samples`` (or
``python -m connectors.sample_data [--out DIR]`` from the repository root).

Why generated and not hand-written: the samples must look like what the agencies really send
(Maastricht addresses with 62xx postcodes, CBS buurtcodes BU0935xxxx, BSNs that pass the
eleven test, each agency's own codes and words) and be large enough to show something, while
every person in them is invented (Faker ``nl_NL`` with a fixed seed). Running the generator again
gives byte-identical files, which a test checks against the shipped ``connectors/samples/``.

Each file also carries a few deliberately bad records. ``manifest.json`` lists them by the
reference the connector reports (``file:line``; for the SQL table the watermark ``mutatie_id``)
with the reject code the runner must give, so the tests know exactly what must be rejected.

Three invented people are planted for the bundler (docs/bundling.md), appended at the end of
the files so the bad records keep their lines: one reported by politie, woningcorporatie and
schuldhulpverlening within 90 days (``multi_agency_90_days`` fires: exactly one casework alert),
and two near misses (two signals only; three agencies spread over more than 90 days). The
manifest lists their records under :data:`PLANTED_PEOPLE` by reference, with the person's label;
every other sample person appears once, so no other bundle fires. Two young people are planted
for the youth rule (youth care, education and police within 90 days: one fires, one near miss);
see ``_YOUTH_CAST``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from faker import Faker

__all__ = [
    "PLANTED_ALERT",
    "PLANTED_PEOPLE",
    "PLANTED_YOUTH_ALERT",
    "SEED",
    "SQL_COLUMNS",
    "bad_records",
    "generate_samples",
    "load_sql_sample",
    "sql_rows",
]

SEED = 935  # the CBS municipality code of Maastricht
#: The manifest entry that lists the planted people's records (reference -> person label).
PLANTED_PEOPLE = "bundling (planted people)"
#: The label of the planted person the bundler must raise an alert about; the others must not.
PLANTED_ALERT = "alert"
#: The planted young person the youth rule (youth care, education and police) must alert on.
PLANTED_YOUTH_ALERT = "youth-alert"
SQL_TABLE = "schuldsignalen"
_OVERSIZED_TEXT = "Zeer uitgebreide toelichting. " * 2500  # ~75 kB: over the 64 KiB default limit
_STREETS = (
    "Boschstraat", "Brusselsestraat", "Tongerseweg", "Akerstraat", "Scharnerweg", "Voltastraat",
    "Rechtstraat", "Wycker Brugstraat", "Meerssenerweg", "Dorpstraat", "Sint Pieterstraat",
    "Oranjeplein", "Heerderweg", "Koningin Emmaplein", "Nazarethweg", "Brunssummerweg",
    "Balijeweg", "Pastoor Moonenstraat", "Severenstraat", "Limmelderweg",
)  # fmt: skip
_POLICE_CODES = {
    "F350": "Veel lawaai tot laat in de nacht, buren klagen herhaaldelijk.",
    "F351": "Vuilniszakken en grofvuil structureel naast de containers gezet.",
    "F352": "Ruiten van de portiek ingegooid, bewoners ongerust.",
    "F353": "Escalerende burenruzie over parkeerplaats, over en weer verwijten.",
    "F354": "Betrokkene schreeuwt en duwt voorbijgangers bij het winkelcentrum.",
    "F355": "Sterke wietlucht in het trappenhuis, meerdere meldingen.",
    "D200": "Verdachte handel in harddrugs vanuit de woning, veel aanloop.",
    "D300": "Hennepkwekerij aangetroffen op zolder, stroom illegaal afgetapt.",
    "D400": "Opslag van verdovende middelen in een berging.",
    "D500": "Drugsoverlast bij de ingang van het park, spuiten gevonden.",
    "D600": "Minderjarigen worden benaderd als koerier.",
    "I100": "Bewoner bedreigd nadat hij overlast had gemeld.",
    "I200": "Ondernemer onder druk gezet om ruimte beschikbaar te stellen.",
}
_MIDDELEN = ("cocaïne", "heroïne", "cannabis", "amfetamine", "XTC")
_CREDITORS = {
    "HUUR": "Woningstichting Maasdal",
    "ENERGIE": "Energie Zuid",
    "WATER": "Waterbedrijf Limburg",
    "ZORGVERZEKERING": "Zorgverzekeraar Maasland",
}

SQL_COLUMNS = (
    ("mutatie_id", "BIGINT PRIMARY KEY"),
    ("signaalnummer", "TEXT NOT NULL"),
    ("signaalsoort", "TEXT NOT NULL"),
    ("signaaldatum", "TIMESTAMP"),
    ("bsn", "TEXT"),
    ("naam", "TEXT"),
    ("geboortedatum", "DATE"),
    ("adres", "TEXT"),
    ("postcode", "TEXT"),
    ("buurtcode", "TEXT"),
    ("schuldeiser", "TEXT"),
    ("bedrag_achterstand", "NUMERIC(10,2)"),
    ("maanden_achterstand", "INTEGER"),
    ("urgentie", "TEXT"),
    ("verwijzer", "TEXT"),
    ("toelichting", "TEXT"),
)


#: What a sample maker returns: the file's text, its bad records (reference -> reject code) and
#: the planted people's records (reference -> person label).
_Made = tuple[str, dict[str, str], dict[str, str]]


class _People:
    """Invented people and places, all from one seeded source."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("nl_NL")
        self.fake.seed_instance(seed)

    def bsn(self) -> str:
        while True:
            digits = [self.rng.randrange(10) for _ in range(8)]
            total = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True))
            check = total % 11
            if check < 10 and digits[0] != 0:
                return "".join(map(str, digits)) + str(check)

    def name(self) -> str:
        return str(self.fake.name())

    def birth_date(self, low: int = 16, high: int = 80) -> date:
        return date(2024, 1, 1) - timedelta(days=self.rng.randrange(low * 365, high * 365))

    def address(self) -> tuple[str, str, str]:
        """(street and number, postcode "62xx AB", CBS buurtcode)."""
        number = f"{self.rng.randrange(1, 180)}{self.rng.choice(['', '', '', 'A', 'B'])}"
        letters = "".join(self.rng.choice("ABCEGHJKLMNPRTVWXZ") for _ in range(2))
        postcode = f"62{self.rng.randrange(11, 30)} {letters}"
        buurt = f"BU0935{self.rng.randrange(1, 10):02d}{self.rng.randrange(1, 8):02d}"
        return f"{self.rng.choice(_STREETS)} {number}, Maastricht", postcode, buurt

    def moment(self) -> datetime:
        start = datetime(2024, 1, 1, 0, 0)
        return start + timedelta(minutes=self.rng.randrange(0, 180 * 24 * 60))


@dataclass(frozen=True)
class _Planted:
    """One invented person planted for the bundler, and when each agency reports about them."""

    label: str
    bsn: str
    name: str
    birth_date: date
    address: str
    postcode: str  # "62xx AB"
    buurt: str
    reports: dict[str, tuple[datetime, str]]  # sample file -> (observed moment, agency's code)


# Who is reported when and for what: (label, {file: (moment, code)}). Days from the first
# report: 0, 35 and 70 for the alert; 0 and 21 for the first near miss (two signals, the rules
# want three); 0, 65 and 147 for the second (no 90-day window holds more than two).
_CAST = (
    (PLANTED_ALERT, {
        "politie.csv": (datetime(2024, 2, 12, 22, 40), "F350"),
        "woningcorporatie.csv": (datetime(2024, 3, 18), "HA"),
        "schuldhulpverlening.jsonl": (datetime(2024, 4, 22, 10, 15), "HUUR"),
    }),
    ("near-miss-two-signals", {
        "politie.csv": (datetime(2024, 3, 5, 21, 5), "F353"),
        "woningcorporatie.csv": (datetime(2024, 3, 26), "OVL"),
    }),
    ("near-miss-spread", {
        "politie.csv": (datetime(2024, 1, 16, 23, 30), "F354"),
        "woningcorporatie.csv": (datetime(2024, 3, 21), "HA"),
        "schuldhulpverlening.jsonl": (datetime(2024, 6, 11, 9, 45), "ENERGIE"),
    }),
)  # fmt: skip


def _planted(seed: int) -> list[_Planted]:
    """The planted people: invented like everyone else, from a seeded source of their own."""
    p = _People(seed + 100)
    cast: list[_Planted] = []
    for label, reports in _CAST:
        address, postcode, buurt = p.address()
        cast.append(
            _Planted(label, p.bsn(), p.name(), p.birth_date(25, 60), address, postcode, buurt,
                     reports)
        )  # fmt: skip
    return cast


def _csv_text(header: list[str], rows: list[list[str] | str]) -> str:
    """CSV with ``;`` (Dutch exports); a ``str`` row is written verbatim (a malformed line)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        if isinstance(row, str):
            out.write(row + "\n")
        else:
            writer.writerow(row)
    return out.getvalue()


def _politie(p: _People, name: str, cast: list[_Planted]) -> _Made:
    header = [
        "bvh_nummer", "incident_code", "pleegdatum", "bsn_verdachte", "naam_verdachte",
        "geboortedatum_verdachte", "adres", "postcode", "buurtcode", "omschrijving", "ernst",
        "middel", "slachtoffer", "ondermijning",
    ]  # fmt: skip
    rows: list[list[str] | str] = []
    for index in range(40):
        code = list(_POLICE_CODES)[index % len(_POLICE_CODES)]
        address, postcode, buurt = p.address()
        rows.append([
            f"PL2300-2024{100000 + index * 37:06d}", code, p.moment().strftime("%d-%m-%Y %H:%M"),
            p.bsn() if index % 5 else "", p.name() if index % 5 else "",
            p.birth_date(12, 70).strftime("%d-%m-%Y"), address, postcode.replace(" ", ""), buurt,
            _POLICE_CODES[code], str(p.rng.randint(1, 5)),
            p.rng.choice(_MIDDELEN) if code.startswith("D") else "",
            p.rng.choice(["bewoner", "ondernemer", "ambtenaar", "hulpverlener"])
            if code.startswith("I") else "",
            "ja" if code == "I200" else "nee",
        ])  # fmt: skip
    good = rows[0]
    assert isinstance(good, list)
    bad: dict[int, tuple[list[str] | str, str]] = {
        5: ("PL2300-2024999001;F350;03-02-2024 23:10;;", "undecodable"),
        11: ([*good[:10], "hoog", *good[11:]], "invalid"),  # ernst is not a number
        17: ([good[0] + "X", "X999", *good[2:]], "invalid"),  # unknown incident code
        23: ([*good[:9], _OVERSIZED_TEXT, *good[10:]], "oversized"),
        29: ([good[0] + "B", good[1], good[2], "123456789", *good[4:]], "invalid"),  # bad BSN
    }
    tail: list[tuple[list[str], str]] = []
    for person in (person for person in cast if name in person.reports):
        moment, code = person.reports[name]
        tail.append(([
            f"PL2300-2024{100000 + (40 + len(tail)) * 37:06d}", code,
            moment.strftime("%d-%m-%Y %H:%M"), person.bsn, person.name,
            person.birth_date.strftime("%d-%m-%Y"), person.address,
            person.postcode.replace(" ", ""), person.buurt, _POLICE_CODES[code], "3", "", "", "nee",
        ], person.label))  # fmt: skip
    return _with_bad(name, header, rows, bad, tail)


def _with_bad(
    name: str,
    header: list[str],
    rows: list[list[str] | str],
    bad: dict[int, tuple[list[str] | str, str]],
    tail: Sequence[tuple[list[str], str]] = (),
) -> _Made:
    """Insert the bad rows at their indexes, then append the planted people's rows.

    References are header line + 1 + index; the bad rows' map to their reject code, the
    planted people's to the person's label.
    """
    planted: dict[str, str] = {}
    for index in sorted(bad):
        row, code = bad[index]
        rows.insert(index, row)
        planted[f"{name}:{index + 2}"] = code
    people: dict[str, str] = {}
    for row, label in tail:
        rows.append(row)
        people[f"{name}:{len(rows) + 1}"] = label
    return _csv_text(header, rows), planted, people


def _woningcorporatie(p: _People, name: str, cast: list[_Planted]) -> _Made:
    header = [
        "dossiernummer", "soort", "datum_melding", "bsn_huurder", "naam_huurder",
        "geboortedatum_huurder", "adres", "postcode", "buurtcode", "categorie", "melder", "ernst",
        "achterstand_eur", "maanden_achterstand", "ontruimingsdatum", "toelichting",
    ]  # fmt: skip
    texts = {
        "OVL": "Klachten van omwonenden over {c}.",
        "HA": "Huurachterstand, betalingsregeling niet nagekomen.",
        "ONT": "Vonnis ontruiming na langdurige huurachterstand.",
    }
    rows: list[list[str] | str] = []
    for index in range(36):
        soort = ("OVL", "HA", "ONT", "HA")[index % 4]
        address, postcode, buurt = p.address()
        categorie = p.rng.choice(["geluid", "afval", "agressie", "vernieling", "burenruzie"])
        arrears = p.rng.randrange(300, 6000) + p.rng.randrange(100) / 100
        rows.append([
            f"WS-{2024}-{5000 + index}", soort, p.moment().strftime("%d-%m-%Y"), p.bsn(), p.name(),
            p.birth_date(18, 85).strftime("%d-%m-%Y"), address, postcode, buurt,
            categorie if soort == "OVL" else "", p.rng.choice(["buurtbewoner", "medewerker"])
            if soort == "OVL" else "", str(p.rng.randint(1, 5)) if soort == "OVL" else "",
            f"{arrears:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
            if soort != "OVL" else "",
            str(p.rng.randint(1, 8)) if soort != "OVL" else "",
            (p.moment().date() + timedelta(days=60)).strftime("%d-%m-%Y") if soort == "ONT" else "",
            texts[soort].format(c=categorie),
        ])  # fmt: skip
    ha = next(row for row in rows if isinstance(row, list) and row[1] == "HA")
    assert isinstance(ha, list)
    bad: dict[int, tuple[list[str] | str, str]] = {
        4: (";".join([*ha, "extra", "kolommen"]), "undecodable"),
        10: ([*ha[:13], "drie", *ha[14:]], "invalid"),  # maanden_achterstand not a number
        16: ([ha[0] + "X", "XYZ", *ha[2:]], "invalid"),  # unknown soort
        22: ([*ha[:15], _OVERSIZED_TEXT], "oversized"),
        28: ([*ha[:12], "-250,00", *ha[13:]], "invalid"),  # schema: arrears_eur minimum 0
    }
    tail: list[tuple[list[str], str]] = []
    for person in (person for person in cast if name in person.reports):
        moment, soort = person.reports[name]
        nuisance = soort == "OVL"
        tail.append(([
            f"WS-{2024}-{5036 + len(tail)}", soort, moment.strftime("%d-%m-%Y"), person.bsn,
            person.name, person.birth_date.strftime("%d-%m-%Y"), person.address, person.postcode,
            person.buurt, "burenruzie" if nuisance else "", "buurtbewoner" if nuisance else "",
            "3" if nuisance else "", "" if nuisance else "1.845,50", "" if nuisance else "4", "",
            texts[soort].format(c="burenruzie"),
        ], person.label))  # fmt: skip
    return _with_bad(name, header, rows, bad, tail)


def _jsonl(
    lines: list[dict[str, Any] | str],
    bad: dict[int, tuple[Any, str]],
    name: str,
    tail: Sequence[tuple[dict[str, Any], str]] = (),
) -> _Made:
    """JSON Lines with the bad records inserted and the planted people's records appended."""
    planted: dict[str, str] = {}
    for index in sorted(bad):
        record, code = bad[index]
        lines.insert(index, record)
        planted[f"{name}:{index + 1}"] = code
    people: dict[str, str] = {}
    for record, label in tail:
        lines.append(record)
        people[f"{name}:{len(lines)}"] = label
    text = "".join(
        (line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n"
        for line in lines
    )
    return text, planted, people


def _gemeente(p: _People, name: str, cast: list[_Planted]) -> _Made:
    kinds = ("OVERLAST", "DAMOCLES", "SLUITING_174A", "RADICALISERING", "ZVH_VERWIJZING")
    lines: list[dict[str, Any] | str] = []
    for index in range(40):
        zaaktype = kinds[index % len(kinds)]
        address, postcode, buurt = p.address()
        moment = p.moment()
        record: dict[str, Any] = {
            "zaaknummer": f"Z-2024-{10000 + index * 13}",
            "zaaktype": zaaktype,
            "registratiedatum": moment.isoformat(timespec="seconds") + "+01:00",
            "betrokkene": {
                "bsn": p.bsn(),
                "naam": p.name(),
                "geboortedatum": p.birth_date(12, 70).isoformat(),
            },
            "locatie": {"adres": address, "postcode": postcode, "buurtcode": buurt},
            "toelichting": f"Zaak {zaaktype.lower()} in behandeling bij team Veiligheid.",
        }
        if zaaktype == "OVERLAST":
            record["categorie"] = p.rng.choice(["geluid", "afval", "drugsstank", "overig"])
            record["melder"] = p.rng.choice(["bewoner", "ondernemer", "instantie"])
            record["ernst"] = p.rng.randint(1, 5)
        elif zaaktype in ("DAMOCLES", "SLUITING_174A"):
            record["ingangsdatum"] = (moment.date() + timedelta(days=14)).isoformat()
            record["duur_maanden"] = p.rng.choice([3, 6, 12])
        elif zaaktype == "RADICALISERING":
            record["zorgniveau"] = p.rng.choice(["laag", "midden", "hoog"])
            record["indicatoren"] = p.rng.sample(
                ["IND-ISOLATIE", "IND-ONLINE", "IND-UITREIS", "IND-GEWELD", "IND-IDEOLOGIE"], 2
            )
        else:
            record["reden"] = p.rng.choice(
                ["multiprobleem", "veiligheidsrisico", "huiselijk_geweld", "nazorg_detentie"]
            )
            record["urgentie"] = p.rng.choice(["normaal", "spoed"])
            record["behandelaar"] = p.name()
        lines.append(record)
    first = lines[0]
    assert isinstance(first, dict)
    damocles = dict(lines[1]) if isinstance(lines[1], dict) else {}
    bad: dict[int, tuple[Any, str]] = {
        3: ('{"zaaknummer": "Z-2024-99001", "zaaktype": "OVERLAST", ', "undecodable"),
        9: ({**first, "zaaknummer": "Z-2024-99002", "ernst": "erg"}, "invalid"),
        15: ({**first, "zaaknummer": "Z-2024-99003", "zaaktype": "ONBEKEND"}, "invalid"),
        21: ({**first, "zaaknummer": "Z-2024-99004", "toelichting": _OVERSIZED_TEXT}, "oversized"),
        # a closure without an address: the schema requires one
        27: ({**damocles, "zaaknummer": "Z-2024-99005", "locatie": {}}, "invalid"),
        33: ('["Z-2024-99006", "OVERLAST"]', "undecodable"),  # JSON, but not an object
    }
    return _jsonl(lines, bad, name)


_BEWONERS = {
    "drugshandel": (
        "Elke avond wordt er gedeald bij de ingang van het speeltuintje, veel aanloop.",
        "Auto's stoppen kort bij de bank op de hoek, er wordt iets doorgegeven.",
        "Jongeren op scooters halen en brengen pakketjes bij het portiek.",
    ),
    "intimidatie": (
        "Groep hangt bij de winkels en scheldt voorbijgangers uit.",
        "Bewoners durven 's avonds niet meer langs het pleintje te lopen.",
    ),
    "hennepteelt": (
        "Ramen van de bovenverdieping zijn altijd afgeplakt en het ruikt naar wiet.",
        "Gezoem van ventilatoren dag en nacht, warmte op het dak, nooit iemand te zien.",
    ),
    "overlast": (
        "Harde muziek en lachgas in het park tot diep in de nacht.",
        "Rommel en lege flesjes achtergelaten bij het bankje.",
    ),
}
#: The neighbourhood and week most residents' reports are about: a cell the wijkbeeld shows.
_HOTSPOT = ("BU09350201", "6221", "Severenstraat", date(2024, 3, 12))


def _bewoners(p: _People, name: str) -> _Made:
    """Residents' reports (the meldpunt): places and patterns, a cluster in one neighbourhood and
    week, free text with a BSN, a phone number and an e-mail address to be scrubbed, and bad
    records that must be refused for carrying a person."""
    lines: list[dict[str, Any] | str] = []
    for index in range(30):
        soort = p.rng.choice(sorted(_BEWONERS))
        buurt, area, street, day = _HOTSPOT
        if index < 8:  # the hotspot: drug dealing reported again and again in one week
            soort, day = "drugshandel", day + timedelta(days=index % 4)  # Tue-Fri, one week
        else:
            _, postcode, buurt = p.address()
            area, street = postcode[:4], p.rng.choice(_STREETS)
            day = p.moment().date()
        lines.append({
            "meldingnummer": f"M-{index + 1:04d}",
            "soort": soort,
            "straat": street,
            "postcodegebied": area,
            "buurtcode": buurt,
            "tijdstip": p.rng.choice(["ochtend", "middag", "avond", "nacht", "wisselend"]),
            "hoe_vaak": p.rng.choice(["eenmalig", "vaker", "wekelijks", "dagelijks"]),
            "waargenomen_op": day.isoformat(),
            "omschrijving": p.rng.choice(_BEWONERS[soort]),
        })  # fmt: skip
    base = lines[0]
    assert isinstance(base, dict)
    # Typed into the free text: scrubbed at intake, the report itself is taken.
    typed = p.bsn()
    for index, extra in (
        (10, f" De dealer heeft BSN {typed[:3]} {typed[3:]} volgens de buren."),
        (11, " Bel mij gerust op 06-12345678."),
        (12, f" Mail mij: {p.fake.user_name()}@example.nl"),
    ):
        record = lines[index]
        assert isinstance(record, dict)
        record["omschrijving"] = str(record["omschrijving"]) + extra
    bsn = p.bsn()
    bad: dict[int, tuple[Any, str]] = {
        4: ({**base, "meldingnummer": "M-9001", "naam": p.name()}, "person_data"),
        9: ({**base, "meldingnummer": "M-9002", "email_melder": "x@example.nl"},
            "person_data"),
        14: ({**base, "meldingnummer": "M-9003", "straat": f"BSN {bsn}"}, "person_data"),
        19: ({**base, "meldingnummer": "M-9004", "soort": "inbraak"}, "invalid"),
        24: ('{"meldingnummer": "M-9005", "soort": ', "undecodable"),
        27: ({**base, "meldingnummer": "M-9006", "omschrijving": _OVERSIZED_TEXT}, "oversized"),
    }  # fmt: skip
    return _jsonl(lines, bad, name)


def sql_rows(seed: int = SEED) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The schuldhulpverlening table rows and the planted bad ones (by ``mutatie_id``)."""
    p = _People(seed + 1)
    rows = [_debt_record(p, index) for index in range(30)]
    for number, row in enumerate(rows, start=1):
        row["mutatie_id"] = number * 10  # gaps, as a real mutation sequence has
    rows[7] |= {"signaalsoort": "BELASTING"}  # unknown code
    rows[14] |= {"urgentie": "morgen"}  # a referral with an urgency not in the value list
    rows[23] |= {"bedrag_achterstand": -120}  # schema: arrears_eur minimum 0 (if a debt)
    rows[23] |= {"signaalsoort": "HUUR", "schuldeiser": _CREDITORS["HUUR"]}
    planted = {str(rows[i]["mutatie_id"]): "invalid" for i in (7, 14, 23)}
    return rows, planted


def _debt_record(p: _People, index: int) -> dict[str, Any]:
    soort = ("HUUR", "ENERGIE", "WATER", "ZORGVERZEKERING", "DOORVERWIJZING")[index % 5]
    address, postcode, buurt = p.address()
    referral = soort == "DOORVERWIJZING"
    return {
        "signaalnummer": f"VS-2024-{700 + index}",
        "signaalsoort": soort,
        "signaaldatum": p.moment().isoformat(sep=" "),
        "bsn": p.bsn(),
        "naam": p.name(),
        "geboortedatum": p.birth_date(18, 90).isoformat(),
        "adres": address,
        "postcode": postcode,
        "buurtcode": buurt,
        "schuldeiser": None if referral else _CREDITORS[soort],
        "bedrag_achterstand": None if referral else p.rng.randrange(8000, 450000) / 100,
        "maanden_achterstand": None if referral else p.rng.randint(1, 9),
        "urgentie": p.rng.choice(["normaal", "spoed"]) if referral else None,
        "verwijzer": p.name() if referral else None,
        "toelichting": "Meervoudige problematiek." if referral else "Vroegsignaal vaste lasten.",
    }


def _schuldhulp_jsonl(p: _People, name: str, cast: list[_Planted]) -> _Made:
    lines: list[dict[str, Any] | str] = [_debt_record(p, index) for index in range(25)]
    first = lines[0]
    assert isinstance(first, dict)
    huge = {**first, "signaalnummer": "VS-2024-9904", "toelichting": _OVERSIZED_TEXT}
    bad: dict[int, tuple[Any, str]] = {
        2: ('{"signaalnummer": "VS-2024-9901", "signaalsoort": HUUR}', "undecodable"),
        8: ({**first, "signaalnummer": "VS-2024-9902", "maanden_achterstand": "twee"}, "invalid"),
        14: ({**first, "signaalnummer": "VS-2024-9903", "signaalsoort": "BELASTING"}, "invalid"),
        20: (huge, "oversized"),
    }
    tail: list[tuple[dict[str, Any], str]] = []
    for person in (person for person in cast if name in person.reports):
        moment, soort = person.reports[name]
        record = {
            "signaalnummer": f"VS-2024-{725 + len(tail)}",
            "signaalsoort": soort,
            "signaaldatum": moment.isoformat(sep=" "),
            "bsn": person.bsn,
            "naam": person.name,
            "geboortedatum": person.birth_date.isoformat(),
            "adres": person.address,
            "postcode": person.postcode,
            "buurtcode": person.buurt,
            "schuldeiser": _CREDITORS[soort],
            "bedrag_achterstand": 1912.35,
            "maanden_achterstand": 4,
            "urgentie": None,
            "verwijzer": None,
            "toelichting": "Vroegsignaal vaste lasten.",
        }
        tail.append((record, person.label))
    return _jsonl(lines, bad, name, tail)


# --- youth care (jeugdzorg) and education (onderwijs), issue 19 ---
#
# Two more planted people, both minors: one reported by jeugdzorg, onderwijs and politie within
# 90 days (days 0, 27 and 73: the rule youth_care_education_police_90_days fires, and wins over
# multi_agency_90_days), and a near miss reported by the same three agencies over 133 days (no
# 90-day window holds more than two of them, so no rule fires). Drawn from a seeded source of
# their own and written after the other planted rows, so the earlier samples keep every line.
_YOUTH_CAST = (
    (PLANTED_YOUTH_ALERT, {
        "jeugdzorg.jsonl": (datetime(2024, 2, 6, 14, 20), "CRIMINELE_UITBUITING"),
        "onderwijs.csv": (datetime(2024, 3, 4), "RELATIEF"),
        "politie.csv": (datetime(2024, 4, 19, 21, 50), "D200"),
    }),
    ("youth-near-miss-spread", {
        "jeugdzorg.jsonl": (datetime(2024, 1, 22, 10, 0), "DRUGSHANDEL"),
        "onderwijs.csv": (datetime(2024, 3, 11), "RELATIEF"),
        "politie.csv": (datetime(2024, 6, 3, 22, 15), "D200"),
    }),
)  # fmt: skip
_YOUTH_TEXTS = {
    "JEUGDBESCHERMING": "Zorgen over de thuissituatie, school meldt verwaarlozing.",
    "HUISELIJK_GEWELD": "Melding huiselijk geweld, jeugdige getuige van geweld tussen ouders.",
    "DRUGSHANDEL": "Jeugdige wordt gezien bij een bekend dealpand, heeft veel contant geld.",
    "CRIMINELE_UITBUITING": "Jeugdige wordt ingezet als koerier, signalen van dwang en schulden.",
}
_ABSENCE_TEXTS = {
    "RELATIEF": "Herhaald ongeoorloofd verzuim, ouders niet bereikbaar.",
    "ABSOLUUT": "Leerplichtige jeugdige staat op geen school ingeschreven.",
    "LUXE": "Vakantie genomen buiten de schoolvakanties zonder toestemming.",
    "VSV": "Schoolverlater zonder startkwalificatie, niet meer verschenen.",
}
_SCHOOLS = (
    "Sint-Maartenscollege", "Bonnefanten College", "Porta Mosana College", "Montessori College",
    "Vista college", "Basisschool De Griffel", "Basisschool Wyck", "Leeuwenborgh Opleidingen",
)  # fmt: skip


def _planted_youth(seed: int) -> list[_Planted]:
    """The planted young people (12 to 16 years old on 1 January 2024)."""
    p = _People(seed + 200)
    cast: list[_Planted] = []
    for label, reports in _YOUTH_CAST:
        address, postcode, buurt = p.address()
        cast.append(
            _Planted(label, p.bsn(), p.name(), p.birth_date(12, 16), address, postcode, buurt,
                     reports)
        )  # fmt: skip
    return cast


def _youth_record(p: _People, index: int) -> dict[str, Any]:
    soort = tuple(_YOUTH_TEXTS)[index % len(_YOUTH_TEXTS)]
    address, postcode, buurt = p.address()
    return {
        "meldingnummer": f"JZ-2024-{3000 + index * 7}",
        "soort_zorg": soort,
        "meldingsdatum": p.moment().isoformat(timespec="seconds") + "+01:00",
        "jeugdige": {
            "bsn": p.bsn(),
            "naam": p.name(),
            "geboortedatum": p.birth_date(4, 21).isoformat(),
        },
        "verblijfadres": {"adres": address, "postcode": postcode, "buurtcode": buurt},
        "ernst": p.rng.randint(1, 5),
        "urgentie": p.rng.choice(["regulier", "spoed"]),
        "toelichting": _YOUTH_TEXTS[soort],
    }


def _jeugdzorg(p: _People, name: str, cast: list[_Planted]) -> _Made:
    lines: list[dict[str, Any] | str] = [_youth_record(p, index) for index in range(30)]
    first = lines[0]
    assert isinstance(first, dict)
    wrong_bsn = {**first["jeugdige"], "bsn": "123456789"}
    bad: dict[int, tuple[Any, str]] = {
        2: ('{"meldingnummer": "JZ-2024-9901", "soort_zorg": ', "undecodable"),
        7: ({**first, "meldingnummer": "JZ-2024-9902", "ernst": "hoog"}, "invalid"),
        12: ({**first, "meldingnummer": "JZ-2024-9903", "soort_zorg": "ONBEKEND"}, "invalid"),
        17: ({**first, "meldingnummer": "JZ-2024-9904", "toelichting": _OVERSIZED_TEXT},
             "oversized"),
        22: ({**first, "meldingnummer": "JZ-2024-9905", "jeugdige": wrong_bsn}, "invalid"),
        26: ({**first, "meldingnummer": "JZ-2024-9906", "urgentie": "morgen"}, "invalid"),
    }  # fmt: skip
    tail: list[tuple[dict[str, Any], str]] = []
    for person in (person for person in cast if name in person.reports):
        moment, soort = person.reports[name]
        record = {
            "meldingnummer": f"JZ-2024-{3210 + len(tail) * 7}",
            "soort_zorg": soort,
            "meldingsdatum": moment.isoformat(timespec="seconds") + "+01:00",
            "jeugdige": {
                "bsn": person.bsn,
                "naam": person.name,
                "geboortedatum": person.birth_date.isoformat(),
            },
            "verblijfadres": {
                "adres": person.address, "postcode": person.postcode, "buurtcode": person.buurt,
            },
            "ernst": 4,
            "urgentie": "spoed",
            "toelichting": _YOUTH_TEXTS[soort],
        }  # fmt: skip
        tail.append((record, person.label))
    return _jsonl(lines, bad, name, tail)


def _onderwijs(p: _People, name: str, cast: list[_Planted]) -> _Made:
    header = [
        "verzuimmelding_id", "verzuimsoort", "datum_melding", "bsn_leerling", "naam_leerling",
        "geboortedatum_leerling", "school", "buurtcode_school", "uren_verzuim", "weken_verzuim",
        "toelichting",
    ]  # fmt: skip
    rows: list[list[str] | str] = []
    for index in range(30):
        soort = tuple(_ABSENCE_TEXTS)[index % len(_ABSENCE_TEXTS)]
        school_leaver = soort == "VSV"
        born = p.birth_date(17, 22) if school_leaver else p.birth_date(5, 17)
        rows.append([
            f"VZL-{24000 + index * 11}", soort, p.moment().strftime("%d-%m-%Y"), p.bsn(),
            p.name(), born.strftime("%d-%m-%Y"), p.rng.choice(_SCHOOLS), p.address()[2],
            str(p.rng.randint(16, 60)) if soort == "RELATIEF" else "",
            str(p.rng.randint(1, 12)), _ABSENCE_TEXTS[soort],
        ])  # fmt: skip
    good = rows[0]
    assert isinstance(good, list)
    bad: dict[int, tuple[list[str] | str, str]] = {
        3: ("VZL-99001;RELATIEF;04-03-2024", "undecodable"),
        8: ([good[0] + "A", *good[1:8], "veel", *good[9:]], "invalid"),  # hours not a number
        13: ([good[0] + "B", "ZIEK", *good[2:]], "invalid"),  # unknown verzuimsoort
        18: ([good[0] + "C", *good[1:8], "-4", *good[9:]], "invalid"),  # schema: minimum 0
        24: ([good[0] + "D", *good[1:10], _OVERSIZED_TEXT], "oversized"),
    }
    tail: list[tuple[list[str], str]] = []
    for person in (person for person in cast if name in person.reports):
        moment, soort = person.reports[name]
        tail.append(([
            f"VZL-{24330 + len(tail) * 11}", soort, moment.strftime("%d-%m-%Y"), person.bsn,
            person.name, person.birth_date.strftime("%d-%m-%Y"), _SCHOOLS[0], person.buurt,
            "24", "5", _ABSENCE_TEXTS[soort],
        ], person.label))  # fmt: skip
    return _with_bad(name, header, rows, bad, tail)


#: The youth-care and education samples: maker and seed offset (fixed, not positional).
_YOUTH_MAKERS: dict[str, tuple[Callable[[_People, str, list[_Planted]], _Made], int]] = {
    "jeugdzorg.jsonl": (_jeugdzorg, 70),
    "onderwijs.csv": (_onderwijs, 80),
}


def load_sql_sample(
    connection: Any, table: str = SQL_TABLE, *, placeholder: str = "?", seed: int = SEED
) -> None:
    """Create ``table`` and fill it with the sample rows (sqlite3 or psycopg connection)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in SQL_COLUMNS)
    connection.execute(f"CREATE TABLE {table} ({columns})")
    names = [name for name, _ in SQL_COLUMNS]
    insert = (
        f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 - table is ours, values bound
        f"VALUES ({', '.join([placeholder] * len(names))})"
    )
    for row in sql_rows(seed)[0]:
        connection.execute(insert, tuple(row[name] for name in names))
    connection.commit()


def generate_samples(out_dir: Path, seed: int = SEED) -> dict[str, dict[str, str]]:
    """Write every sample file and ``manifest.json`` into ``out_dir``; returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cast = _planted(seed) + _planted_youth(seed)
    makers: dict[str, Callable[[_People, str, list[_Planted]], _Made]] = {
        "politie.csv": _politie,
        "gemeente.jsonl": _gemeente,
        "woningcorporatie.csv": _woningcorporatie,
        "schuldhulpverlening.jsonl": _schuldhulp_jsonl,
    }
    manifest: dict[str, dict[str, str]] = {PLANTED_PEOPLE: {}}
    for offset, (name, make) in enumerate(makers.items()):
        text, planted, people = make(_People(seed + 10 * (offset + 1)), name, cast)
        (out_dir / name).write_text(text, encoding="utf-8")
        manifest[name] = planted
        manifest[PLANTED_PEOPLE].update(people)
    for name, (make, offset) in _YOUTH_MAKERS.items():
        text, planted, people = make(_People(seed + offset), name, cast)
        (out_dir / name).write_text(text, encoding="utf-8")
        manifest[name] = planted
        manifest[PLANTED_PEOPLE].update(people)
    # The residents' meldpunt: seeded apart from the agencies above, so it keeps its records
    # whatever sources join that loop.
    text, planted, _ = _bewoners(_People(seed + 1000), "bewoners.jsonl")
    (out_dir / "bewoners.jsonl").write_text(text, encoding="utf-8")
    manifest["bewoners.jsonl"] = planted
    database = out_dir / "schuldhulpverlening.sqlite"
    database.unlink(missing_ok=True)
    with sqlite3.connect(database) as connection:
        load_sql_sample(connection, seed=seed)
    connection.close()
    manifest[f"{SQL_TABLE} (mutatie_id)"] = sql_rows(seed)[1]
    manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out_dir / "manifest.json").write_text(manifest_text, encoding="utf-8")
    return manifest


def bad_records(manifest: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The manifest's planted bad records per source (reference -> reject code), without the
    planted people."""
    return {source: refs for source, refs in manifest.items() if source != PLANTED_PEOPLE}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m connectors.sample_data [--out DIR]``: regenerate the sample files."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "samples")
    folder: Path = parser.parse_args(argv).out
    manifest = generate_samples(folder)
    bad = bad_records(manifest)
    planted = sum(len(refs) for refs in bad.values())
    people = len(set(manifest[PLANTED_PEOPLE].values()))
    print(
        f"wrote {len(bad)} samples to {folder} ({planted} planted bad records, "
        f"{people} planted people for the bundler)"
    )


if __name__ == "__main__":
    main()
