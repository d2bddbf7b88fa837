"""Retail prices: eSIM Go cost plus markup, converted and rounded up to a tidy amount.

Rules (all rounding is up, so a price never drops below cost + markup):
- Stars (XTR): USD ÷ `usd_per_star`, then up to a multiple of 5 below 500 ⭐, of 10 from 500 ⭐.
- Fiat with two minor digits: up to the next price ending in .49 or .99 (4.10 → 4.49, 4.50 →
  4.99); other fiat: up to the next whole minor unit.
- The cost is in USD (eSIM Go's organisation currency). A non-USD fiat payment currency is taken
  1:1 with USD: there is no exchange-rate source, so set the markup to cover the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext

from babel.numbers import format_currency, format_decimal, get_currency_precision

from services.i18n import normalize_language

STARS = "XTR"
_STAR_SIGN = "⭐"
_STARS_FINE_STEP = 5
_STARS_COARSE_STEP = 10
_STARS_COARSE_FROM = 500
# Cents endings a tidy two-decimal price may have.
_TIDY_CENTS = (49, 99)


@dataclass(frozen=True, slots=True)
class Price:
    """An amount as Telegram invoices take it: whole Stars, or minor units (cents) of fiat."""

    amount: int
    currency: str

    @property
    def is_stars(self) -> bool:
        return self.currency == STARS

    @property
    def exponent(self) -> int:
        """Minor-unit digits: 0 for Stars, 2 for USD/EUR."""
        return 0 if self.is_stars else get_currency_precision(self.currency)

    @property
    def major(self) -> Decimal:
        """The amount in whole units (Stars, dollars): 499 cents → Decimal("4.99")."""
        return Decimal(self.amount).scaleb(-self.exponent)


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _ceil_to_step(value: int, step: int) -> int:
    return -(-value // step) * step


def tidy_stars(stars: int) -> int:
    """Round up to a multiple of 5 below 500 Stars, of 10 from there; at least 5."""
    stars = max(stars, 1)
    step = _STARS_FINE_STEP if stars < _STARS_COARSE_FROM else _STARS_COARSE_STEP
    tidy = _ceil_to_step(stars, step)
    # 497 → 500 is already on the coarse grid; 501 must go to 510, not 505.
    return tidy if tidy < _STARS_COARSE_FROM else _ceil_to_step(tidy, _STARS_COARSE_STEP)


def tidy_cents(cents: int) -> int:
    """Round minor units up to the next .49 or .99 ending: 410 → 449, 450 → 499, 500 → 549."""
    cents = max(cents, 1)
    whole, rest = divmod(cents, 100)
    for ending in _TIDY_CENTS:
        if rest <= ending:
            return whole * 100 + ending
    return (whole + 1) * 100 + _TIDY_CENTS[0]


class PricingService:
    """Turns an eSIM Go cost (USD) into the retail price in the payment currency."""

    def __init__(self, markup_percent: Decimal, usd_per_star: Decimal, currency: str) -> None:
        if markup_percent <= Decimal(-100):
            raise ValueError("markup_percent must be above -100")
        if usd_per_star <= 0:
            raise ValueError("usd_per_star must be positive")
        self.markup_percent = Decimal(markup_percent)
        self.usd_per_star = Decimal(usd_per_star)
        self.currency = currency.strip().upper()

    @property
    def uses_stars(self) -> bool:
        return self.currency == STARS

    def retail_usd(self, cost: Decimal) -> Decimal:
        """Cost plus markup, never below cost, unrounded."""
        marked_up = cost * (1 + self.markup_percent / 100)
        return max(marked_up, cost)

    def retail_price(self, cost: Decimal) -> Price:
        """The tidy price a user pays for a bundle that costs `cost` USD."""
        with localcontext() as ctx:
            # Enough digits for any price, and any inexact step rounds towards the seller.
            ctx.prec = 40
            ctx.rounding = ROUND_CEILING
            usd = self.retail_usd(Decimal(cost))
            if self.uses_stars:
                return Price(tidy_stars(_ceil(usd / self.usd_per_star)), STARS)
            exponent = get_currency_precision(self.currency)
            minor = _ceil(usd.scaleb(exponent))
        if exponent == 2:
            minor = tidy_cents(minor)
        return Price(max(minor, 1), self.currency)

    def format_price(self, price: Price, lang: str | None) -> str:
        return format_price(price, lang)


def format_price(price: Price, lang: str | None) -> str:
    """ "50 ⭐" for Stars; fiat the way the user's locale writes it ("$4.99", "4,99 $")."""
    locale = normalize_language(lang, "en")
    if price.is_stars:
        return f"{format_decimal(price.amount, locale=locale)} {_STAR_SIGN}"
    return format_currency(price.major, price.currency, locale=locale)
