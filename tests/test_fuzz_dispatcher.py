"""Property: no text or callback data, however odd, escapes the handlers or goes unanswered."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.callbacks import (
    BundleCallback,
    CountryCallback,
    CountryListCallback,
    LanguageCallback,
    MenuCallback,
)
from tests.helpers import BotEnv, callback_update, make_user, message_update

USERS = [make_user(5001, language_code="en"), make_user(5002, language_code="ru")]
PREFIXES = ["menu", "lang", "cl", "co", "bu", "noop"]
KNOWN = [
    "main", "buy", "help", "language", "myesims", "regions", "region", "az", "show", "TH", "GB",
    "Europe", "Asia", "p", "s", "a0", "a3", "r0.Europe", "r9.Asia", "esim_1GB_7D_TH_V2",
    "esim_1GB_7D_RAS_V2", "en", "ru", "0", "1", "-1", "99999999999999999999", "",
]  # fmt: skip
COUNTRY_WORDS = ["Thailand", "таиланд", "UK", "Guinea", "Англия", "usa", "🇹🇭", "Korea", "Congo"]

fragment = st.one_of(st.sampled_from(KNOWN), st.text(max_size=12))
safe = st.text(
    alphabet=st.characters(blacklist_characters=":", blacklist_categories=("Cs",)), max_size=20
)


def _fits(data: str) -> bool:
    return 0 < len(data.encode()) <= 64


def _packed(factory: st.SearchStrategy[object]) -> st.SearchStrategy[str]:
    """Well-formed data of our own factories with arbitrary field values (stale or forged)."""

    def pack(value: object) -> str | None:
        try:
            return value.pack()  # type: ignore[attr-defined,no-any-return]
        except ValueError:
            return None

    return factory.map(pack).filter(lambda d: d is not None and _fits(d))  # type: ignore[misc]


callback_datas = st.one_of(
    st.text(min_size=1, max_size=64).filter(_fits),
    st.builds(
        lambda prefix, parts: ":".join([prefix, *parts]),
        st.sampled_from(PREFIXES),
        st.lists(fragment, max_size=6),
    ).filter(_fits),
    _packed(st.builds(MenuCallback, action=st.sampled_from(["main", "buy", "help", "language"]))),
    _packed(st.builds(LanguageCallback, code=st.sampled_from(["en", "ru", "de", ""]) | safe)),
    _packed(
        st.builds(
            CountryListCallback,
            view=st.sampled_from(["regions", "region", "az"]),
            page=st.integers(-(10**9), 10**9),
            region=st.sampled_from(["Europe", "Asia", "LATAM", "Atlantis", ""]) | safe,
        )
    ),
    _packed(
        st.builds(
            CountryCallback,
            iso=st.sampled_from(["TH", "GB", "US", "AQ", "th", "", "XXX"]) | safe,
            origin=st.sampled_from(["p", "s", "a2", "a999", "r1.Asia", "r0.", "rX.Asia"]) | safe,
            page=st.integers(-(10**9), 10**9),
        )
    ),
    _packed(
        st.builds(
            BundleCallback,
            action=st.sampled_from(["show"]),
            bundle=st.sampled_from(["esim_1GB_7D_TH_V2", "esim_5GB_30D_RGB_V2", "esim_x"]) | safe,
            iso=st.sampled_from(["TH", "GB", "FR", ""]) | safe,
            origin=st.sampled_from(["p", "s", "a1", "r0.Europe"]) | safe,
            page=st.integers(-(10**9), 10**9),
        )
    ),
)
texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(COUNTRY_WORDS),
    st.builds(lambda t: "/" + t, st.text(max_size=30)),
    st.builds(lambda a, b: a + b, st.sampled_from(COUNTRY_WORDS), st.text(max_size=5)),
).filter(lambda t: t.strip() != "" or t == "")  # Telegram never delivers an empty text


@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    event=st.one_of(
        st.tuples(st.just("text"), texts.filter(bool), st.sampled_from(USERS)),
        st.tuples(st.just("callback"), callback_datas, st.sampled_from(USERS)),
    ),
    message_id=st.integers(min_value=1, max_value=40),
)
async def test_random_updates_never_crash_and_callbacks_are_answered(
    bot_env: BotEnv, event: tuple[str, str, object], message_id: int
) -> None:
    kind, payload, user = event
    if kind == "text":
        update = message_update(user, payload, message_id=message_id)  # type: ignore[arg-type]
        await bot_env.feed(update)
    else:
        update = callback_update(user, payload, message_id)  # type: ignore[arg-type]
        calls = await bot_env.feed(update)
        query_id = update.callback_query.id  # type: ignore[union-attr]
        mine = [
            c
            for c in calls
            if c.method == "answerCallbackQuery" and c.params.get("callback_query_id") == query_id
        ]
        assert len(mine) == 1 and mine[0].ok, (payload, mine)
    assert not bot_env.error_logs, [r.getMessage() for r in bot_env.error_logs]
