"""A deterministic, eSIM Go-shaped catalogue: 200+ real countries, fixed, unlimited and regional
plans at realistic prices. The sandbox sells it; tests and benchmarks build on it too."""

from __future__ import annotations

import random
from typing import Any

# ISO code | English name as eSIM Go spells it | region
_COUNTRY_TABLE = """
AL|Albania|Europe
AD|Andorra|Europe
AT|Austria|Europe
BY|Belarus|Europe
BE|Belgium|Europe
BA|Bosnia and Herzegovina|Europe
BG|Bulgaria|Europe
HR|Croatia|Europe
CY|Cyprus|Europe
CZ|Czech Republic|Europe
DK|Denmark|Europe
EE|Estonia|Europe
FO|Faroe Islands|Europe
FI|Finland|Europe
FR|France|Europe
DE|Germany|Europe
GI|Gibraltar|Europe
GR|Greece|Europe
GG|Guernsey|Europe
HU|Hungary|Europe
IS|Iceland|Europe
IE|Ireland|Europe
IM|Isle of Man|Europe
IT|Italy|Europe
JE|Jersey|Europe
XK|Kosovo|Europe
LV|Latvia|Europe
LI|Liechtenstein|Europe
LT|Lithuania|Europe
LU|Luxembourg|Europe
MT|Malta|Europe
MD|Moldova|Europe
MC|Monaco|Europe
ME|Montenegro|Europe
NL|Netherlands|Europe
MK|North Macedonia|Europe
NO|Norway|Europe
PL|Poland|Europe
PT|Portugal|Europe
RO|Romania|Europe
SM|San Marino|Europe
RS|Serbia|Europe
SK|Slovakia|Europe
SI|Slovenia|Europe
ES|Spain|Europe
SE|Sweden|Europe
CH|Switzerland|Europe
TR|Turkey|Europe
UA|Ukraine|Europe
GB|United Kingdom|Europe
VA|Vatican City|Europe
AX|Aland Islands|Europe
AF|Afghanistan|Asia
AM|Armenia|Asia
AZ|Azerbaijan|Asia
BD|Bangladesh|Asia
BT|Bhutan|Asia
BN|Brunei|Asia
KH|Cambodia|Asia
CN|China|Asia
GE|Georgia|Asia
HK|Hong Kong|Asia
IN|India|Asia
ID|Indonesia|Asia
JP|Japan|Asia
KZ|Kazakhstan|Asia
KG|Kyrgyzstan|Asia
LA|Laos|Asia
MO|Macao|Asia
MY|Malaysia|Asia
MV|Maldives|Asia
MN|Mongolia|Asia
MM|Myanmar|Asia
NP|Nepal|Asia
PK|Pakistan|Asia
PH|Philippines|Asia
SG|Singapore|Asia
KR|South Korea|Asia
LK|Sri Lanka|Asia
TW|Taiwan|Asia
TJ|Tajikistan|Asia
TH|Thailand|Asia
TL|Timor-Leste|Asia
TM|Turkmenistan|Asia
UZ|Uzbekistan|Asia
VN|Vietnam|Asia
BH|Bahrain|Middle East
EG|Egypt|Middle East
IR|Iran|Middle East
IQ|Iraq|Middle East
IL|Israel|Middle East
JO|Jordan|Middle East
KW|Kuwait|Middle East
LB|Lebanon|Middle East
OM|Oman|Middle East
PS|Palestine|Middle East
QA|Qatar|Middle East
SA|Saudi Arabia|Middle East
SY|Syria|Middle East
AE|United Arab Emirates|Middle East
YE|Yemen|Middle East
DZ|Algeria|Africa
AO|Angola|Africa
BJ|Benin|Africa
BW|Botswana|Africa
BF|Burkina Faso|Africa
BI|Burundi|Africa
CM|Cameroon|Africa
CV|Cape Verde|Africa
CF|Central African Republic|Africa
TD|Chad|Africa
KM|Comoros|Africa
CG|Congo|Africa
CD|Congo, Democratic Republic of the|Africa
CI|Cote d'Ivoire|Africa
DJ|Djibouti|Africa
GQ|Equatorial Guinea|Africa
ER|Eritrea|Africa
SZ|Eswatini|Africa
ET|Ethiopia|Africa
GA|Gabon|Africa
GM|Gambia|Africa
GH|Ghana|Africa
GN|Guinea|Africa
GW|Guinea-Bissau|Africa
KE|Kenya|Africa
LS|Lesotho|Africa
LR|Liberia|Africa
LY|Libya|Africa
MG|Madagascar|Africa
MW|Malawi|Africa
ML|Mali|Africa
MR|Mauritania|Africa
MU|Mauritius|Africa
YT|Mayotte|Africa
MA|Morocco|Africa
MZ|Mozambique|Africa
NA|Namibia|Africa
NE|Niger|Africa
NG|Nigeria|Africa
RE|Reunion|Africa
RW|Rwanda|Africa
ST|Sao Tome and Principe|Africa
SN|Senegal|Africa
SC|Seychelles|Africa
SL|Sierra Leone|Africa
SO|Somalia|Africa
ZA|South Africa|Africa
SS|South Sudan|Africa
SD|Sudan|Africa
TZ|Tanzania|Africa
TG|Togo|Africa
TN|Tunisia|Africa
UG|Uganda|Africa
ZM|Zambia|Africa
ZW|Zimbabwe|Africa
US|United States|North America
CA|Canada|North America
MX|Mexico|North America
PR|Puerto Rico|North America
GL|Greenland|North America
BM|Bermuda|North America
PM|Saint Pierre and Miquelon|North America
AI|Anguilla|LATAM
AG|Antigua and Barbuda|LATAM
AR|Argentina|LATAM
AW|Aruba|LATAM
BS|Bahamas|LATAM
BB|Barbados|LATAM
BZ|Belize|LATAM
BO|Bolivia|LATAM
BQ|Bonaire|LATAM
BR|Brazil|LATAM
VG|British Virgin Islands|LATAM
KY|Cayman Islands|LATAM
CL|Chile|LATAM
CO|Colombia|LATAM
CR|Costa Rica|LATAM
CU|Cuba|LATAM
CW|Curacao|LATAM
DM|Dominica|LATAM
DO|Dominican Republic|LATAM
EC|Ecuador|LATAM
SV|El Salvador|LATAM
FK|Falkland Islands|LATAM
GF|French Guiana|LATAM
GD|Grenada|LATAM
GP|Guadeloupe|LATAM
GT|Guatemala|LATAM
GY|Guyana|LATAM
HT|Haiti|LATAM
HN|Honduras|LATAM
JM|Jamaica|LATAM
MQ|Martinique|LATAM
MS|Montserrat|LATAM
NI|Nicaragua|LATAM
PA|Panama|LATAM
PY|Paraguay|LATAM
PE|Peru|LATAM
BL|Saint Barthelemy|LATAM
KN|Saint Kitts and Nevis|LATAM
LC|Saint Lucia|LATAM
MF|Saint Martin|LATAM
VC|Saint Vincent and the Grenadines|LATAM
SX|Sint Maarten|LATAM
SR|Suriname|LATAM
TT|Trinidad and Tobago|LATAM
TC|Turks and Caicos Islands|LATAM
UY|Uruguay|LATAM
VE|Venezuela|LATAM
VI|US Virgin Islands|LATAM
AS|American Samoa|Oceania
AU|Australia|Oceania
CK|Cook Islands|Oceania
FJ|Fiji|Oceania
PF|French Polynesia|Oceania
GU|Guam|Oceania
KI|Kiribati|Oceania
MH|Marshall Islands|Oceania
FM|Micronesia|Oceania
NR|Nauru|Oceania
NC|New Caledonia|Oceania
NZ|New Zealand|Oceania
MP|Northern Mariana Islands|Oceania
PW|Palau|Oceania
PG|Papua New Guinea|Oceania
WS|Samoa|Oceania
SB|Solomon Islands|Oceania
TO|Tonga|Oceania
TV|Tuvalu|Oceania
VU|Vanuatu|Oceania
WF|Wallis and Futuna|Oceania
"""

COUNTRIES: tuple[tuple[str, str, str], ...] = tuple(
    (iso, name, region)
    for iso, name, region in (line.split("|") for line in _COUNTRY_TABLE.strip().splitlines())
)
REGIONS = ("Europe", "Asia", "Middle East", "Africa", "North America", "LATAM", "Oceania")

# Regional bundle code, display name, regions covered. A regional bundle's base `countries`
# holds one pseudo-country for the region (iso = the code, never two letters); the real
# countries it works in are in `roamingEnabled`.
REGIONAL_PACKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("REUP", "Europe+", ("Europe",)),
    ("RAS", "Asia", ("Asia",)),
    ("RME", "Middle East", ("Middle East",)),
    ("RAF", "Africa", ("Africa",)),
    ("RNA", "North America", ("North America",)),
    ("RLA", "Latin America", ("LATAM",)),
    ("ROC", "Oceania", ("Oceania",)),
    ("RGB", "Global", REGIONS),
)

REQUIRED_BUNDLES = (
    "esim_1GB_7D_GB_V2",
    "esim_1GB_7D_TH_V2",
    "esim_1GB_7D_US_V2",
    "esim_1GB_7D_AE_V2",
    "esim_1GB_7D_DE_V2",
    "esim_1GB_7D_TR_V2",
)

# Standard Fixed sizes as eSIM Go sells them: (GB, days, base USD price at factor 1.0).
_FIXED = ((1, 7, 1.28), (2, 15, 2.3), (3, 30, 3.2), (5, 30, 4.5), (10, 30, 8.0), (20, 30, 14.5))
_LONG = ((50, 90, 32.0), (100, 180, 58.0))
_UNLIMITED = (
    ("UL", "Unlimited Lite", "Standard Unlimited Lite", 1.0),
    ("ULE", "Unlimited Essential", "Standard Unlimited Essential", 1.4),
    ("ULP", "Unlimited Plus", "Standard Unlimited Plus", 1.9),
)
_UL_DAYS = ((1, 2.1), (3, 5.5), (5, 8.5), (7, 11.0), (10, 15.0), (15, 21.0), (30, 38.0))

_REGION_FACTOR = {
    "Europe": 1.0,
    "North America": 1.6,
    "Asia": 1.2,
    "Middle East": 2.2,
    "Africa": 3.0,
    "LATAM": 2.6,
    "Oceania": 2.4,
}
_POPULAR = ("GB", "TH", "US", "AE", "DE", "TR", "FR", "ES", "IT", "JP", "CN", "EG", "GE", "AM")


def _country(iso: str, name: str, region: str) -> dict[str, str]:
    return {"name": name, "region": region, "iso": iso}


def _days(n: int) -> str:
    return "1 Day" if n == 1 else f"{n} Days"


def _price(value: float) -> float:
    # Floats only for JSON; two decimals, e.g. 1.28 or 4.5.
    return round(max(value, 0.49), 2)


def _bundle(
    *,
    name: str,
    description: str,
    group: str,
    countries: list[dict[str, str]],
    roaming: list[dict[str, str]],
    data_mb: int,
    days: int,
    price: float,
    unlimited: bool = False,
    speed: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "groups": [group],
        "countries": countries,
        "dataAmount": data_mb,
        "duration": days,
        "speed": speed or ["4G", "5G"],
        "autostart": True,
        "unlimited": unlimited,
        "roamingEnabled": roaming,
        "price": _price(price),
        "billingType": "FixedCost",
    }


class _Maker:
    """Builds the bundles of one catalogue: per-country price factors and speeds drawn once."""

    def __init__(self, rng: random.Random) -> None:
        self.factor = {
            iso: _REGION_FACTOR[region] * rng.uniform(0.8, 1.3) for iso, _, region in COUNTRIES
        }
        self.speeds = {
            iso: (["4G", "5G"] if rng.random() < 0.6 else ["3G", "4G"]) for iso, *_ in COUNTRIES
        }
        self.by_iso = {iso: (name, region) for iso, name, region in COUNTRIES}

    def fixed(self, iso: str, gb: int, days: int, base: float, group: str) -> dict[str, Any]:
        name, region = self.by_iso[iso]
        return _bundle(
            name=f"esim_{gb}GB_{days}D_{iso}_V2",
            description=f"eSIM, {gb}GB, {_days(days)}, {name}, V2",
            group=group,
            countries=[_country(iso, name, region)],
            roaming=[],
            data_mb=gb * 1000,
            days=days,
            price=base * self.factor[iso],
            speed=self.speeds[iso],
        )

    def unlimited(
        self, iso: str, code: str, label: str, group: str, mult: float, days: int, base: float
    ) -> dict[str, Any]:
        name, region = self.by_iso[iso]
        return _bundle(
            name=f"esim_{code}_{days}D_{iso}_V2",
            description=f"eSIM, {label}, {_days(days)}, {name}, V2",
            group=group,
            countries=[_country(iso, name, region)],
            roaming=[],
            data_mb=-1,
            days=days,
            price=base * mult * self.factor[iso],
            unlimited=True,
            speed=self.speeds[iso],
        )

    def regional(
        self, code: str, label: str, regions: tuple[str, ...], gb: int, days: int, base: float
    ) -> dict[str, Any]:
        covered = [_country(iso, n, r) for iso, n, r in COUNTRIES if r in regions]
        if code == "REUP":  # eSIM Go's "Europe+" also covers a few neighbours
            covered += [_country(iso, *self.by_iso[iso]) for iso in ("IL", "EG", "MA")]
        region = regions[0] if len(regions) == 1 else "Global"
        mult = 1.0 + len(regions) * 0.35 + (0.2 if code == "REUP" else 0.0)
        return _bundle(
            name=f"esim_{gb}GB_{days}D_{code}_V2",
            description=f"eSIM, {gb}GB, {_days(days)}, {label}, V2",
            group="Standard Fixed",
            countries=[_country(code, label, region)],
            roaming=covered,
            data_mb=gb * 1000,
            days=days,
            price=base * mult * 1.5,
        )

    def tiers(self) -> list[list[dict[str, Any]]]:
        """Priority order: what a shop needs first survives a small catalogue."""
        fixed, unlimited, regional = self.fixed, self.unlimited, self.regional
        return [
            [fixed(name.split("_")[3], 1, 7, 1.28, "Standard Fixed") for name in REQUIRED_BUNDLES],
            [fixed(iso, 1, 7, 1.28, "Standard Fixed") for iso, *_ in COUNTRIES],
            [
                regional(code, label, regions, gb, days, base)
                for code, label, regions in REGIONAL_PACKS
                for gb, days, base in _FIXED[:4]
            ],
            [
                unlimited(iso, *_UNLIMITED[0], days, base)
                for iso in _POPULAR
                for days, base in _UL_DAYS
            ],
            [
                fixed(iso, gb, days, base, "Standard Fixed")
                for gb, days, base in _FIXED[1:]
                for iso, *_ in COUNTRIES
            ],
            [
                regional(code, label, regions, gb, days, base)
                for code, label, regions in REGIONAL_PACKS
                for gb, days, base in _FIXED[4:] + _LONG
            ],
            [
                unlimited(iso, *ul, days, base)
                for ul in _UNLIMITED
                for iso, *_ in COUNTRIES
                for days, base in _UL_DAYS
            ],
            [
                fixed(iso, gb, days, base, "Standard Long Duration")
                for gb, days, base in _LONG
                for iso, *_ in COUNTRIES
            ],
        ]


def make_catalogue(n_bundles: int = 1500, seed: int = 0) -> list[dict[str, Any]]:
    """`n_bundles` raw catalogue items (fewer only if n_bundles < the required six)."""
    rng = random.Random(seed)
    chosen: dict[str, dict[str, Any]] = {}
    for tier in _Maker(rng).tiers():
        for item in tier:
            if len(chosen) >= max(n_bundles, len(REQUIRED_BUNDLES)):
                break
            chosen.setdefault(item["name"], item)
    result = list(chosen.values())
    rng.shuffle(result)  # eSIM Go's order is not ours to rely on
    return result


# Operators for GET /networks: a few real names for popular countries, made-up ones elsewhere.
_OPERATORS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "TH": (("AIS", ("4G", "5G")), ("dtac", ("4G",)), ("TrueMove H", ("4G", "5G"))),
    "FR": (("Orange", ("4G", "5G")), ("SFR", ("4G",)), ("Bouygues Telecom", ("3G", "4G"))),
    "US": (("T-Mobile", ("4G", "5G")), ("AT&T", ("LTE",))),
    "GB": (("EE", ("4G", "5G")), ("Vodafone", ("4G",)), ("O2", ("3G", "4G"))),
}


def make_networks(seed: int = 0) -> list[dict[str, Any]]:
    """`countryNetworks` items as GET /networks returns them: one per catalogue country."""
    rng = random.Random(seed)
    items = []
    for iso, name, _region in COUNTRIES:
        operators = _OPERATORS.get(iso) or tuple(
            (f"{name} Mobile {n + 1}", tuple(rng.choice((("4G",), ("3G", "4G"), ("4G", "5G")))))
            for n in range(rng.randint(1, 3))
        )
        networks = [
            {
                "name": operator.upper(),
                "brandName": operator,
                "mcc": "520",
                "mnc": f"{n:02d}",
                "tagid": f"{iso}{n:03d}",
                "speed": list(speeds),
            }
            for n, (operator, speeds) in enumerate(operators)
        ]
        items.append({"name": iso, "networks": networks})
    return items
