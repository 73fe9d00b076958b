"""The board's labels in Indonesian and English."""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "id": {
        "now_calling": "Nomor Dipanggil",
        "counter": "Loket",
        "recent": "Panggilan Sebelumnya",
        "ticket": "Nomor",
        "waiting": "Belum ada panggilan",
        "offline": "Koneksi terputus — menyambung kembali…",
        "recall": "Panggilan ulang",
        "welcome": "Selamat datang",
        "please_wait": "Silakan menunggu nomor Anda dipanggil",
    },
    "en": {
        "now_calling": "Now Calling",
        "counter": "Counter",
        "recent": "Previous Calls",
        "ticket": "Ticket",
        "waiting": "No calls yet",
        "offline": "Connection lost — reconnecting…",
        "recall": "Recall",
        "welcome": "Welcome",
        "please_wait": "Please wait until your number is called",
    },
}


def board_lang(asked: str | None, branch_languages: list[str]) -> str:
    """The label language: the one asked for if known, else the branch's first known language, else Indonesian."""
    for lang in (asked, *branch_languages):
        if lang in LABELS:
            return lang
    return "id"
