"""Retail prices: markup, Stars conversion, tidy rounding (always up), display per language."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.pricing import Price, PricingService, format_price, tidy_cents, tidy_stars

D = Decimal


def stars(markup: str = "30", usd_per_star: str = "0.013") -> PricingService:
    return PricingService(D(markup), D(usd_per_star), "XTR")


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        ("1.28", 130),  # 1.664 USD = 128 ⭐ → 130
        ("1.30", 130),  # 1.69 USD = exactly 130 ⭐
        ("1.31", 135),  # 131.0… ⭐ → next multiple of 5
        ("0.01", 5),  # never less than the smallest tidy price
        ("0", 5),
        ("3.80", 380),
        ("4.97", 500),  # 497 ⭐ → 500
        ("5.00", 500),
        ("5.01", 510),  # from 500 ⭐ on, multiples of 10
        ("14.50", 1450),
        ("58", 5800),
    ],
)
def test_stars_price_is_cost_plus_markup_rounded_up_to_a_tidy_number(
    cost: str, expected: int
) -> None:
    assert stars().retail_price(D(cost)) == Price(expected, "XTR")


def test_stars_price_never_below_cost_even_with_a_discount() -> None:
    price = stars(markup="-20").retail_price(D("1.30"))

    assert price == Price(100, "XTR")  # 1.30 USD is 100 ⭐ at cost


def test_exact_decimal_conversion_has_no_float_drift() -> None:
    # 0.1 + 0.2 style drift would turn 3 ⭐-exact amounts into the next step.
    service = PricingService(D("0"), D("0.01"), "XTR")

    assert service.retail_price(D("0.30")) == Price(30, "XTR")
    assert service.retail_price(D("0.300000000000000000001")) == Price(35, "XTR")


@pytest.mark.parametrize(
    ("cost", "markup", "expected"),
    [
        ("1.28", "30", 199),  # 1.664 → 1.99
        ("3.00", "30", 399),  # 3.90 → 3.99
        ("3.45", "30", 449),  # 4.485 → 4.49
        ("3.46", "30", 499),  # 4.498 → 4.99 (4.49 would be below cost + markup)
        ("3.83", "30", 499),  # 4.979 → 4.99
        ("3.84", "30", 549),  # 4.992 → 5.49: 4.99 would undercut
        ("3.85", "30", 549),  # 5.005 → 5.49
        ("0.10", "0", 49),
        ("4.99", "0", 499),
        ("5.00", "0", 549),
    ],
)
def test_fiat_price_ends_in_49_or_99(cost: str, markup: str, expected: int) -> None:
    service = PricingService(D(markup), D("0.013"), "USD")

    assert service.retail_price(D(cost)) == Price(expected, "USD")


def test_non_usd_fiat_is_taken_one_to_one() -> None:
    assert PricingService(D("0"), D("0.013"), "eur").retail_price(D("2.00")) == Price(249, "EUR")


def test_currency_without_minor_units_rounds_up_to_whole_units() -> None:
    assert PricingService(D("30"), D("0.013"), "JPY").retail_price(D("100")) == Price(130, "JPY")
    assert PricingService(D("30"), D("0.013"), "JPY").retail_price(D("1.01")) == Price(2, "JPY")


def test_tidy_helpers() -> None:
    assert [tidy_stars(n) for n in (0, 1, 5, 6, 499, 500, 501, 999)] == [
        5, 5, 5, 10, 500, 500, 510, 1000,
    ]  # fmt: skip
    assert [tidy_cents(n) for n in (0, 1, 49, 50, 99, 100, 149, 150)] == [
        49, 49, 49, 99, 99, 149, 149, 199,
    ]  # fmt: skip


@given(
    cost=st.decimals(min_value=D("0"), max_value=D("1000"), places=4),
    markup=st.decimals(min_value=D("-50"), max_value=D("300"), places=2),
    currency=st.sampled_from(["XTR", "USD", "EUR"]),
)
@settings(max_examples=300, deadline=None)
def test_price_never_undercuts_cost_plus_markup(
    cost: Decimal, markup: Decimal, currency: str
) -> None:
    service = PricingService(markup, D("0.013"), currency)

    price = service.retail_price(cost)

    wanted = max(cost * (1 + markup / 100), cost)
    paid_usd = price.major * D("0.013") if price.is_stars else price.major
    assert isinstance(price.amount, int) and price.amount > 0
    assert paid_usd >= wanted


@pytest.mark.parametrize(("markup", "usd_per_star"), [("-100", "0.013"), ("30", "0")])
def test_invalid_settings_are_rejected(markup: str, usd_per_star: str) -> None:
    with pytest.raises(ValueError):
        PricingService(D(markup), D(usd_per_star), "XTR")


@pytest.mark.parametrize(
    ("price", "lang", "expected"),
    [
        (Price(50, "XTR"), "en", "50 ⭐"),
        (Price(50, "XTR"), "ru", "50 ⭐"),
        (Price(1250, "XTR"), "en", "1,250 ⭐"),
        (Price(499, "USD"), "en", "$4.99"),
        (Price(499, "USD"), "ru", "4,99\xa0$"),
        (Price(1999, "EUR"), "ru", "19,99\xa0€"),
        (Price(499, "USD"), "uk", "$4.99"),  # unsupported language → English
    ],
)
def test_format_price(price: Price, lang: str, expected: str) -> None:
    assert format_price(price, lang) == expected
    assert stars().format_price(price, lang) == expected


def test_price_major_units() -> None:
    assert Price(499, "USD").major == D("4.99")
    assert Price(50, "XTR").major == D("50")
    assert Price(130, "JPY").major == D("130")
