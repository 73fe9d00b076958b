"""What a kiosk shows: the services with their open/closed state, its words and settings, as one versioned document."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

import msgspec

from edge.engine.eta import mean_service_seconds, open_counters
from edge.engine.model import State
from edge.engine.numbering import business_date, issued_count, within_hours, zone
from edge.wait_words import wait_text
from sync.contract_config import WEEKDAYS, BranchConfig, Kiosk, Service

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "lang_name": "Bahasa Indonesia",
        "welcome": "Selamat datang",
        "choose_lang": "Pilih bahasa",
        "choose_service": "Pilih layanan",
        "waiting": "menunggu",
        "closed": "Tutup",
        "closed_now": "Tutup saat ini",
        "opens_at": "Buka {day} pukul {time}",
        "today": "hari ini",
        "tomorrow": "besok",
        "unavailable": "Tidak tersedia hari ini",
        "full": "Kuota hari ini penuh",
        "details": "Data tambahan",
        "phone": "Nomor HP",
        "phone_hint": "Contoh: 081234567890",
        "phone_invalid": "Nomor HP harus 8-15 angka",
        "phone_required": "Nomor HP wajib diisi",
        "notify_me": "Kirimi saya pemberitahuan (SMS/WhatsApp) saat giliran saya dekat",
        "ref": "Nomor nasabah / referensi",
        "ref_invalid": "Maksimal 32 huruf atau angka",
        "ref_required": "Nomor referensi wajib diisi",
        "optional": "opsional",
        "skip": "Lewati",
        "continue": "Ambil nomor",
        "back": "Kembali",
        "clear": "Hapus",
        "your_number": "Nomor antrean Anda",
        "ahead": "Antrean di depan Anda",
        "eta": "Perkiraan tunggu",
        "issued": "Waktu",
        "scan": "Pindai QR untuk memantau antrean di ponsel Anda",
        "printing": "Mencetak tiket…",
        "printed": "Silakan ambil tiket Anda",
        "print_failed": "Printer bermasalah. Foto layar ini atau pindai QR — nomor Anda tetap berlaku.",
        "done": "Selesai",
        "offline": "Offline — menyambung kembali…",
        "offline_ticket": "Tiket offline: nomor Anda berlaku dan akan disinkronkan otomatis.",
        "offline_printed": "Silakan ambil tiket Anda. Tiket offline: nomor Anda berlaku dan akan disinkronkan.",
        "offline_empty": "Kiosk sedang offline dan cadangan nomor habis. Silakan ke petugas.",
        "working": "Memproses…",
        "error": "Maaf, terjadi kesalahan. Silakan coba lagi atau hubungi petugas.",
        "large_text": "Huruf besar",
        "contrast": "Kontras tinggi",
        "not_paired": "Kiosk ini belum dipasangkan. Hubungi petugas.",
        "status_title": "Status antrean",
        "status_waiting": "Menunggu",
        "status_called": "Dipanggil — silakan menuju",
        "status_serving": "Sedang dilayani",
        "status_finished": "Selesai",
        "status_held": "Ditunda — mohon tunggu panggilan",
        "status_cancelled": "Dibatalkan",
        "status_no_show": "Tidak hadir saat dipanggil",
        "status_pending": "Tiket ini dibuat saat offline dan akan muncul setelah tersinkron.",
        "counter": "Loket",
        "updated": "Diperbarui otomatis",
        # appointments: check-in with the booking's QR (edge/web/kiosk/checkin.py)
        "checkin": "Saya punya janji temu",
        "checkin_title": "Pindai kode QR janji temu Anda",
        "checkin_hint": "Arahkan kode QR ke pemindai, atau ketik nomornya lalu tekan Enter.",
        "checkin_camera": "Pakai kamera",
        "checkin_late_note": "Anda datang terlambat: tiket Anda masuk antrean biasa.",
        "checkin_invalid": "Kode QR ini tidak dapat dibaca atau tidak berlaku di sini. Silakan hubungi petugas.",
        "checkin_no_bookings": "Check-in janji temu belum tersedia. Silakan hubungi petugas.",
        "checkin_wrong_branch": "Janji temu ini untuk cabang lain.",
        "checkin_wrong_day": "Janji temu ini bukan untuk hari ini.",
        "checkin_unknown": "Janji temu ini tidak ditemukan. Silakan hubungi petugas.",
        "checkin_cancelled": "Janji temu ini sudah dibatalkan.",
        "checkin_too_early": "Terlalu awal. Check-in dibuka pukul {time}.",
        "checkin_too_late": "Waktu check-in janji temu ini sudah lewat. Silakan ambil antrean biasa.",
        "checkin_used": "Kode QR ini sudah dipakai untuk check-in.",
    },
    "en": {
        "lang_name": "English",
        "welcome": "Welcome",
        "choose_lang": "Choose your language",
        "choose_service": "Choose a service",
        "waiting": "waiting",
        "closed": "Closed",
        "closed_now": "Closed now",
        "opens_at": "Opens {day} at {time}",
        "today": "today",
        "tomorrow": "tomorrow",
        "unavailable": "Not available today",
        "full": "Today's quota is full",
        "details": "Your details",
        "phone": "Mobile number",
        "phone_hint": "e.g. 081234567890",
        "phone_invalid": "A mobile number has 8-15 digits",
        "phone_required": "Please enter your mobile number",
        "notify_me": "Notify me (SMS/WhatsApp) when my turn is near",
        "ref": "Customer / reference number",
        "ref_invalid": "Up to 32 letters or digits",
        "ref_required": "Please enter your reference number",
        "optional": "optional",
        "skip": "Skip",
        "continue": "Get my number",
        "back": "Back",
        "clear": "Clear",
        "your_number": "Your queue number",
        "ahead": "People ahead of you",
        "eta": "Estimated wait",
        "issued": "Time",
        "scan": "Scan the QR code to follow your turn on your phone",
        "printing": "Printing your ticket…",
        "printed": "Please take your ticket",
        "print_failed": "The printer has a problem. Take a photo of this screen or scan the QR — your number is valid.",
        "done": "Done",
        "offline": "Offline — reconnecting…",
        "offline_ticket": "Offline ticket: your number is valid and will sync automatically.",
        "offline_printed": "Please take your ticket. Offline ticket: your number is valid and will sync.",
        "offline_empty": "This kiosk is offline and has no numbers in reserve. Please ask our staff.",
        "working": "One moment…",
        "error": "Sorry, something went wrong. Please try again or ask our staff.",
        "large_text": "Large text",
        "contrast": "High contrast",
        "not_paired": "This kiosk is not paired yet. Please ask our staff.",
        "status_title": "Queue status",
        "status_waiting": "Waiting",
        "status_called": "Called — please go to",
        "status_serving": "Being served",
        "status_finished": "Finished",
        "status_held": "On hold — please wait to be called",
        "status_cancelled": "Cancelled",
        "status_no_show": "Missed the call",
        "status_pending": "This ticket was issued offline and appears here once it has synced.",
        "counter": "Counter",
        "updated": "Updates automatically",
        "checkin": "I have an appointment",
        "checkin_title": "Scan your appointment QR code",
        "checkin_hint": "Hold the QR code to the scanner, or type its text and press Enter.",
        "checkin_camera": "Use the camera",
        "checkin_late_note": "You arrived late: your ticket joins the regular queue.",
        "checkin_invalid": "This QR code cannot be read or is not valid here. Please ask our staff.",
        "checkin_no_bookings": "Appointment check-in is not available yet. Please ask our staff.",
        "checkin_wrong_branch": "This appointment is for another branch.",
        "checkin_wrong_day": "This appointment is not for today.",
        "checkin_unknown": "This appointment was not found. Please ask our staff.",
        "checkin_cancelled": "This appointment was cancelled.",
        "checkin_too_early": "Too early. Check-in opens at {time}.",
        "checkin_too_late": "The check-in time for this appointment has passed. Please take a regular ticket.",
        "checkin_used": "This QR code has already been used to check in.",
    },
}


def words(lang: str) -> dict[str, str]:
    """The kiosk's words in a language (Indonesian when unknown)."""
    return WORDS.get(lang, WORDS["id"])


def service_name(service: Service, lang: str) -> str:
    """A service's name in a language, falling back to its default name."""
    return service.names.get(lang) or service.name


def next_opening(service: Service, now: datetime, timezone: str) -> tuple[int, str] | None:
    """(days from today, "HH:MM") of the service's next opening within a week, or None."""
    if not service.hours:
        return None
    local = now.astimezone(zone(timezone))
    clock = local.strftime("%H:%M")
    for offset in range(8):
        day = WEEKDAYS[(local.weekday() + offset) % 7]
        starts = sorted(start for start, _end in service.hours.get(day) or [] if offset or start > clock)
        if starts:
            return offset, starts[0]
    return None


def next_wait_seconds(state: State, service_id: str, waiting: int) -> int:
    """The wait of the next ticket, as its ticket will say: the same ETA rule (waiting / open counters * the recent
    mean service time + half a service); with no counter open yet, as if one were."""
    mean = mean_service_seconds(state, service_id)
    return round(waiting / max(open_counters(state, service_id), 1) * mean + mean / 2)


def service_state(state: State, service: Service, now: datetime) -> dict[str, Any]:
    """One service as the kiosk offers it: open or why not, and how long the queue is."""
    config = state.config
    assert config is not None
    waiting = sum(1 for t in state.active("waiting") if t.service_id == service.id)
    eta = next_wait_seconds(state, service.id, waiting)
    issued = issued_count(*state.numbering(service.id, business_date(now, config.timezone)))
    entry: dict[str, Any] = {
        "id": service.id,
        "prefix": service.prefix,
        "names": {lang: service_name(service, lang) for lang in WORDS},
        "waiting": waiting,
        "eta_minutes": math.ceil(eta / 60),
        "eta_text": {lang: wait_text(eta, lang, waiting + 1) for lang in WORDS},
        "open": False,
        "reason": None,
        "opens": None,
    }
    if not service.active:
        entry["reason"] = "unavailable"
    elif not within_hours(service, now, config.timezone):
        entry["reason"] = "closed"
        entry["opens"] = next_opening(service, now, config.timezone)
    elif service.daily_capacity is not None and issued >= service.daily_capacity:
        entry["reason"] = "full"
    else:
        entry["open"] = True
    return entry


def kiosk_settings(config: BranchConfig) -> Kiosk:
    """The branch's kiosk settings."""
    return config.kiosk


def catalog(state: State, now: datetime) -> dict[str, Any]:
    """The kiosk document: version (config + opening state), languages, words, settings, services.

    The `version` changes whenever what the kiosk shows changes, so a kiosk swaps documents whole, never field by field.
    """
    config = state.config
    assert config is not None
    kiosk = kiosk_settings(config)
    languages = [lang for lang in config.languages if lang in WORDS] or ["id", "en"]
    services = [service_state(state, s, now) for s in config.services]
    settings = msgspec.to_builtins(kiosk)
    settings.pop("printers", None)  # printer addresses stay on the appliance
    settings.pop("printer", None)
    body = {
        "config_version": config.version,
        "branch_name": config.name,
        "timezone": config.timezone,
        "business_date": max(business_date(now, config.timezone), state.business_date),
        "languages": languages,
        "words": {lang: WORDS[lang] for lang in languages},
        "settings": settings,
        "services": services,
    }
    opening = [(s["id"], s["open"], s["reason"]) for s in services]
    digest = hashlib.sha256(msgspec.json.encode([config.version, opening])).hexdigest()[:12]
    return {"version": f"{config.version}-{digest}", **body}


def local_time(moment: datetime, timezone: str) -> str:
    """`24/11/2026 09:05` in the branch's time zone."""
    return moment.astimezone(zone(timezone)).strftime("%d/%m/%Y %H:%M")
