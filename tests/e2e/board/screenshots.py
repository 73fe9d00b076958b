"""Screenshots of the display board at 1920x1080 for the README: `python -m tests.e2e.board.screenshots`.

Starts a demo appliance in a temporary dir, gives it branding and a signage playlist, makes a few calls, and saves
docs/screenshots/board-id.png (lantai-1, Indonesian labels) and board-en.png (lantai-2, English labels).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.e2e.board.conftest import CHROMIUM, CHROMIUM_ARGS, FULL_HD, Staff, board_url
from tests.support.appliance import RunningAppliance, seed_demo

OUT = Path(__file__).resolve().parents[3] / "docs" / "screenshots"

PROMO = """<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="1500" viewBox="0 0 1200 1500">
  <defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">
    <stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/></linearGradient></defs>
  <rect width="1200" height="1500" fill="url(#g)"/>
  <circle cx="1020" cy="220" r="330" fill="#ffffff" opacity=".07"/>
  <circle cx="140" cy="1320" r="260" fill="#ffffff" opacity=".06"/>
  <text x="90" y="260" font-family="DejaVu Sans" font-size="56" font-weight="700" fill="#FFC928">{kicker}</text>
  <text x="90" y="420" font-family="DejaVu Sans" font-size="120" font-weight="800" fill="#fff">{line1}</text>
  <text x="90" y="560" font-family="DejaVu Sans" font-size="120" font-weight="800" fill="#fff">{line2}</text>
  <text x="90" y="860" font-family="DejaVu Sans" font-size="260" font-weight="800" fill="#FFC928">{big}</text>
  <text x="90" y="960" font-family="DejaVu Sans" font-size="54" fill="#fff" opacity=".85">{small}</text>
  <rect x="90" y="1180" width="640" height="120" rx="60" fill="#FFC928"/>
  <text x="410" y="1262" text-anchor="middle" font-family="DejaVu Sans" font-size="52" font-weight="700"
        fill="#0B1220">{cta}</text>
</svg>"""


def _playlist(appliance: RunningAppliance) -> None:
    media = appliance.data_dir / "board-media"
    media.mkdir(exist_ok=True)
    (media / "promo-kpr.svg").write_text(
        PROMO.format(
            top="#1D4ED8",
            bottom="#0B1F5C",
            kicker="KPR RUMAH IMPIAN",
            line1="Bunga tetap",
            line2="mulai",
            big="3,5%",
            small="selama 3 tahun pertama*",
            cta="Tanya di Meja CS",
        )
    )
    (media / "promo-app.svg").write_text(
        PROMO.format(
            top="#047857",
            bottom="#064E3B",
            kicker="MOBILE BANKING",
            line1="Skip the",
            line2="queue:",
            big="24/7",
            small="transfers, bills, e-wallets",
            cta="Download the app",
        )
    )
    headers = appliance.headers("admin")
    r = httpx.get(f"{appliance.api}/config", headers=headers, timeout=10)
    config = r.json()
    config["display"] = {
        "recent_calls": 6,
        "playlist": [
            {"kind": "image", "src": "/board/media/promo-kpr.svg", "seconds": 15, "areas": ["lantai-1"]},
            {"kind": "image", "src": "/board/media/promo-app.svg", "seconds": 15, "areas": ["lantai-2"]},
        ],
    }
    put = httpx.put(
        f"{appliance.api}/config", json=config, headers={**headers, "If-Match": r.headers["etag"]}, timeout=10
    )
    assert put.status_code == 200, put.text


def _calls(staff: Staff) -> None:
    for _ in range(9):
        staff.enqueue("teller")
    for _ in range(4):
        staff.enqueue("cs")
    for _ in range(2):
        staff.enqueue("loan")
    for round_ in range(3):
        for counter in ("1", "2", "3") if round_ < 2 else ("2", "1"):
            ticket = staff.call_next(counter)
            staff.post(f"/tickets/{ticket['ticket_id']}/start", {"counter_id": counter})
            staff.post(f"/tickets/{ticket['ticket_id']}/complete", {"counter_id": counter})
    staff.call_next("3")
    for counter in ("4", "5", "6", "4"):
        ticket = staff.call_next(counter)
        if counter != "4" or ticket["ticket_number"] == "B001":
            staff.post(f"/tickets/{ticket['ticket_id']}/start", {"counter_id": counter})
            staff.post(f"/tickets/{ticket['ticket_id']}/complete", {"counter_id": counter})


def main() -> None:
    """Write the board screenshots."""
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="board-shots-"))
    try:
        seed_demo(tmp / "data")
        with RunningAppliance(tmp / "data") as appliance:
            _playlist(appliance)
            _calls(Staff(appliance))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for area, lang in (("lantai-1", "id"), ("lantai-2", "en")):
                    page = browser.new_page(viewport=FULL_HD)  # type: ignore[arg-type]
                    page.goto(board_url(appliance, area, lang=lang))
                    page.wait_for_function("document.body.dataset.online === '1'")
                    page.wait_for_function("document.querySelector('#slides img')?.naturalWidth > 0")
                    page.wait_for_timeout(3500)  # let the new-call flash animation finish
                    page.screenshot(path=str(OUT / f"board-{lang}.png"))
                    page.close()
                browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}/board-id.png and board-en.png")


if __name__ == "__main__":
    main()
