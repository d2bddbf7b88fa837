"""Services' screens (services.actions) rendered as buttons: every action a service can name
leads where the user expects, from the place the screen stands."""

from __future__ import annotations

from handlers.action_render import Place, esim_place, plan_place, render_screen
from handlers.callbacks import (
    BundleCallback,
    CountryCallback,
    DoctorCallback,
    InstallHelpCallback,
    MenuCallback,
    MyEsimsCallback,
    PhoneCheckCallback,
    RefundCallback,
    TopUpCallback,
)
from services.actions import Action, ActionButton, TextScreen

VALUES = {
    Action.PLAN: "esim_1GB_7D_FR_V2",
    Action.COUNTRY: "FR",
    Action.ASK_REFUND: "42",
    Action.REFUND: "42",
    Action.PHONE_CHECK: "unlock",
    Action.BUY: "esim_1GB_7D_TH_V2",
}


def rendered(action: Action, place: Place) -> str:
    button = ActionButton(action, action.value, VALUES.get(action, ""))
    screen = render_screen(TextScreen("text", ((button,),)), place)
    (row,) = screen.markup.inline_keyboard
    (shown,) = row
    assert shown.text == action.value
    return str(shown.callback_data)


def test_every_action_on_an_esim_screen_leads_to_its_callback() -> None:
    place = esim_place(7, iso="FR")
    expected = {
        Action.INSTALL_HELP: InstallHelpCallback(esim_id=7),
        Action.SHOW_QR: MyEsimsCallback(action="qr", id=7),
        Action.DIAGNOSE: DoctorCallback(action="check", esim_id=7),
        Action.ASK_REFRESH: DoctorCallback(action="ask_refresh", esim_id=7),
        Action.REFRESH: DoctorCallback(action="refresh", esim_id=7),
        Action.TICKET: DoctorCallback(action="ticket", esim_id=7),
        Action.TOPUP: TopUpCallback(esim_id=7),
        Action.PLAN: BundleCallback(action="show", bundle="esim_1GB_7D_FR_V2", iso="FR"),
        Action.COUNTRY: CountryCallback(iso="FR"),
        Action.BACK: MyEsimsCallback(action="esim", id=7),
        Action.ASK_REFUND: RefundCallback(action="ask", order_id=42, esim_id=7),
        Action.REFUND: RefundCallback(action="do", order_id=42, esim_id=7),
        Action.MY_ESIMS: MenuCallback(action="myesims"),
        Action.MENU: MenuCallback(action="main"),
        Action.BROWSE: MenuCallback(action="buy"),
    }
    for action, data in expected.items():
        assert rendered(action, place) == data.pack(), action


def test_the_phone_check_carries_the_plan_it_started_from() -> None:
    card = plan_place("esim_1GB_7D_TH_V2", "TH")
    menu = plan_place("", "")

    assert rendered(Action.PHONE_CHECK, card) == (
        PhoneCheckCallback(step="unlock", bundle="esim_1GB_7D_TH_V2", iso="TH").pack()
    )
    assert rendered(Action.BUY, card) == (
        BundleCallback(action="buy", bundle="esim_1GB_7D_TH_V2", iso="TH").pack()
    )
    assert rendered(Action.BACK, card) == (
        BundleCallback(action="show", bundle="esim_1GB_7D_TH_V2", iso="TH").pack()
    )
    assert rendered(Action.PHONE_CHECK, menu) == PhoneCheckCallback(step="unlock").pack()
    assert rendered(Action.BACK, menu) == MenuCallback(action="main").pack()


def test_url_buttons_stay_urls_and_a_button_that_cannot_be_packed_is_left_out() -> None:
    url = ActionButton(Action.INSTALL_IPHONE, "iPhone", url="https://esimsetup.apple.com/x")
    too_long = ActionButton(Action.PLAN, "plan", "esim_" + "x" * 80)
    kept = ActionButton(Action.MENU, "menu")
    screen = TextScreen("text", ((url,), (too_long,), (too_long, kept)))

    rows = render_screen(screen, esim_place(1)).markup.inline_keyboard

    assert [[b.text for b in row] for row in rows] == [["iPhone"], ["menu"]]
    assert rows[0][0].url == "https://esimsetup.apple.com/x"
