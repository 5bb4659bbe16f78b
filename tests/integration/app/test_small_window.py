"""At the smallest window and a small Settings dialog nothing overlaps or is cut off unreachably."""

from __future__ import annotations

from itertools import combinations

from PySide6.QtCore import QRect


def test_welcome_cards_do_not_overlap_and_stay_reachable_at_the_minimum_size(
    qtbot, make_window
) -> None:
    window = make_window()
    window.show_page("welcome")
    window.resize(window.minimumSize())
    qtbot.waitUntil(lambda: window.size() == window.minimumSize())
    qtbot.wait(50)  # let the layouts settle
    welcome = window.welcome
    cards = list(welcome.buttons.values())

    def frame(card, holder) -> QRect:
        return QRect(card.mapTo(holder, card.rect().topLeft()), card.size())

    for first, second in combinations(cards, 2):
        assert not frame(first, welcome).intersects(frame(second, welcome)), first.heading
    content = welcome.content
    viewport = welcome.scroll.viewport()
    for card in cards:
        assert card.height() >= card.layout().totalHeightForWidth(card.width()), card.heading
        assert content.rect().contains(frame(card, content)), card.heading  # scrolling reaches it
        assert frame(card, content).right() < viewport.width(), card.heading  # no sideways cut
    if content.height() > viewport.height():
        assert welcome.scroll.verticalScrollBar().isVisible()


def test_a_small_settings_dialog_scrolls_instead_of_clipping(qtbot) -> None:
    from app.settings.app_settings import AppSettings
    from app.settings.settings_store import SettingsStore
    from app.shell.settings_dialog import TABS, SettingsDialog

    dialog = SettingsDialog(SettingsStore(AppSettings(), save=None))
    qtbot.addWidget(dialog)
    dialog.resize(460, 380)
    dialog.show()
    qtbot.waitExposed(dialog)
    clipped = []
    for name, _title in TABS:
        dialog.show_tab(name)
        qtbot.wait(20)
        area = dialog.pages.currentWidget()
        needed = area.widget().minimumSizeHint()
        viewport = area.viewport()
        if needed.width() > viewport.width() and not area.horizontalScrollBar().isVisible():
            clipped.append((name, "width", needed.width(), viewport.width()))
        if needed.height() > viewport.height() and not area.verticalScrollBar().isVisible():
            clipped.append((name, "height", needed.height(), viewport.height()))
    assert clipped == []
