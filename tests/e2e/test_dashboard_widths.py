"""Every dashboard page fits a 390 px phone screen and a 1,280 px window: the navigation wraps, a wide table
scrolls inside its own wrapper and a long id breaks, so the page itself never scrolls sideways; and axe
finds nothing serious or critical at either width. The seeded world, the browser and the tab
are ``test_dashboard``'s."""

from __future__ import annotations

import re

import pytest

from tests.e2e import test_dashboard
from tests.e2e.conftest import wait_for
from tests.e2e.dashboard_world import World, break_the_pool
from tests.e2e.test_dashboard import Page

# test_dashboard's fixtures, used here as they are: module-scoped, so this module seeds a world of its own.
world, browser, tab = test_dashboard.world, test_dashboard.browser, test_dashboard.tab

WIDTHS = (390, 1280)
HREF = re.compile(r'href="([^"?#]+)"')
# What sticks out past the window: the elements whose right edge passes it with no scrolling ancestor
# holding them inside the window.
STICKING_OUT = """(width) => {
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 2) continue;
    let up = el.parentElement, held = false;
    for (; up && !held; up = up.parentElement) {
      held = getComputedStyle(up).overflowX !== "visible" && up.getBoundingClientRect().right <= width + 2;
    }
    const name = `${el.tagName.toLowerCase()}.${el.getAttribute("class")}`;
    if (!held) found.push(`${name} ends at ${Math.round(box.right)} px`);
  }
  return found.slice(0, 8);
}"""


@pytest.fixture(scope="module")
def pages(world: World) -> list[str]:
    """Every page of the world: each list, each kind of page its lists link to (a 73-character run id and
    an incident waiting for approval among them), the error page and the sign-in page."""
    incident = break_the_pool(world)
    runs = _hrefs(world, "/ui/runs?hours=8760", "/ui/runs/")
    experiment = _hrefs(world, "/ui/experiments", "/ui/experiments/")[0]
    trial = _hrefs(world, experiment, f"{experiment}/trials/")[0]
    canaries = _hrefs(world, "/ui/canaries", "/ui/canaries/")
    assert len(runs) == 3 and any(p.startswith("/ui/canaries/jobs/") for p in canaries), (runs, canaries)
    return [
        "/ui/runs?hours=8760",
        *runs,
        "/ui/runs/no-such-run",
        "/ui/experiments",
        experiment,
        trial,
        "/ui/canaries",
        *sorted(set(canaries)),
        "/ui/incidents",
        f"/ui/incidents/{incident}",
        "/ui/builds",
        "/ui/login",
    ]


def _hrefs(seeded: World, path: str, start: str) -> list[str]:
    """The links of ``path`` that start with ``start``, in page order."""
    with seeded.http() as http:
        html = http.get(path).text
    return [h for h in HREF.findall(html) if h.startswith(start)]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_window_and_stays_accessible(
    tab: Page,
    pages: list[str],
    width: int,
) -> None:
    tab.page.set_viewport_size({"width": width, "height": 900})
    wide, inaccessible = {}, {}
    for path in pages:
        page = tab.open(path)
        assert page.title().endswith("· opslab"), path  # type: ignore[attr-defined]
        scroll = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
        if scroll > width + 2:
            wide[path] = (scroll, page.evaluate(STICKING_OUT, width))  # type: ignore[attr-defined]
        violations = tab.serious_violations()
        if violations:
            inaccessible[path] = violations
    assert wide == {}, f"wider than {width} px: {wide}"
    assert inaccessible == {}, f"at {width} px: {inaccessible}"
    assert tab.outside == []
    assert [e for e in tab.errors if "404 (Not Found)" not in e] == []  # the error page is a 404


def test_on_a_phone_a_wide_table_scrolls_inside_its_wrapper_and_the_navigation_wraps(
    tab: Page,
) -> None:
    tab.page.set_viewport_size({"width": 390, "height": 900})
    page = tab.open("/ui/runs?hours=8760")
    wrapper = page.locator("#runs-table .table-wrap")  # type: ignore[attr-defined]
    inside, shown = wrapper.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert inside > shown, "the runs table should be wider than a phone and scroll in its wrapper"
    links = page.locator("header nav a")  # type: ignore[attr-defined]
    for i in range(links.count()):
        box = links.nth(i).bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, links.nth(i).inner_text()
    # the wrapper takes the keyboard's focus, so arrow keys scroll it
    wrapper.focus()
    page.keyboard.press("ArrowRight")  # type: ignore[attr-defined]
    wait_for(lambda: wrapper.evaluate("e => e.scrollLeft"), lambda x: x > 0, 5, "the table to scroll")
