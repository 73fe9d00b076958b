"""The appointments pages' and e-mails' words, Indonesian and English."""

from __future__ import annotations

LANGS = ("id", "en")

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "book_title": "Buat janji temu", "service": "Layanan", "day": "Tanggal", "time": "Jam", "choose": "Pilih",
        "name": "Nama", "email": "E-mail", "phone": "Telepon (opsional)", "book": "Pesan",
        "no_slots": "Tidak ada jadwal tersedia pada tanggal ini.", "closed_day": "Tutup: {reason}",
        "left": "{n} tersisa", "full": "Penuh", "booked_title": "Janji temu Anda",
        "booked_lead": "Tunjukkan kode QR ini di kios cabang saat Anda datang.",
        "booking_id": "Nomor pemesanan", "when": "Waktu", "branch": "Cabang",
        "window": "Check-in dibuka {before} menit sebelum dan ditutup {after} menit setelah jadwal.",
        "cancel": "Batalkan janji", "cancelled": "Janji ini telah dibatalkan.", "download": "Unduh QR (PNG)",
        "err_slot_full": "Jadwal itu baru saja penuh. Silakan pilih jam lain.",
        "err_day_closed": "Cabang tidak menerima janji pada tanggal itu.",
        "err_no_slot": "Jam itu tidak tersedia.", "err_unknown_service": "Layanan tidak tersedia.",
        "err_name": "Isi nama Anda (maks. 120 karakter).", "err_email": "Alamat e-mail tidak valid.",
        "err_phone": "Nomor telepon tidak valid.", "err_not_active": "Janji ini tidak dapat diubah lagi.",
        "err_not_found": "Janji tidak ditemukan.", "err_rate": "Terlalu banyak permintaan. Coba lagi sebentar.",
        "not_found": "Halaman tidak ditemukan.", "privacy": "Data Anda hanya dipakai untuk janji temu ini.",
        "appointments": "Janji temu", "bookings": "Pemesanan", "status": "Status", "contact": "Kontak",
        "booked": "Dipesan", "checked_in": "Sudah check-in", "no_show": "Tidak datang", "st_cancelled": "Dibatalkan",
        "staff_book": "Pesan untuk nasabah", "reschedule": "Jadwalkan ulang", "new_time": "Waktu baru",
        "show": "Tampilkan", "calendar": "Kalender libur", "settings": "Pengaturan janji temu",
        "services": "Layanan yang bisa dipesan", "slot_minutes": "Durasi slot (menit)", "capacity": "Kapasitas",
        "derived": "otomatis", "counters": "Loket", "mean": "Rata-rata layanan (menit)", "quota": "Kuota janji (%)",
        "save": "Simpan", "region": "Wilayah", "before": "Check-in dibuka (menit sebelum)",
        "after": "Check-in ditutup (menit setelah)", "late": "Datang terlambat", "late_walk_in": "Jadi walk-in",
        "late_refuse": "Ditolak", "entries": "Hari libur & blackout", "scope": "Cakupan", "kind": "Jenis",
        "holiday": "Libur", "blackout": "Blackout", "open": "Buka", "national": "Libur nasional & cuti bersama",
        "add": "Tambah", "delete": "Hapus", "import": "Impor iCal", "export": "Ekspor iCal", "year": "Tahun",
        "none": "Belum ada.", "saved": "Tersimpan.", "total": "Total", "branch_pick": "Pilih cabang",
        "mail_confirm_subject": "Janji temu di {branch}: {when}",
        "mail_confirm_text": "Halo {name},\n\nJanji temu Anda untuk {service} di {branch} pada {when} sudah tercatat"
        " (nomor {booking}).\nTunjukkan kode QR terlampir di kios cabang; check-in dibuka {before} menit sebelum"
        " jadwal dan ditutup {after} menit setelahnya.\n\nLihat atau batalkan: {link}\n",
        "mail_remind_subject": "Pengingat janji temu di {branch}: {when}",
        "mail_remind_text": "Halo {name},\n\nPengingat: janji temu Anda untuk {service} di {branch} pada {when}"
        " (nomor {booking}). Bawa kode QR terlampir.\n\nLihat atau batalkan: {link}\n",
        "mail_rescheduled_subject": "Janji temu di {branch} dipindah ke {when}",
        "mail_rescheduled_text": "Halo {name},\n\nJanji temu Anda untuk {service} di {branch} (nomor {booking})"
        " telah dipindah ke {when}.\nTunjukkan kode QR terlampir di kios cabang; jika tanggalnya berubah, kode yang"
        " lama tidak berlaku lagi. Check-in dibuka {before} menit sebelum jadwal dan ditutup {after} menit"
        " setelahnya.\n\nLihat, ganti jadwal atau batalkan: {link}\n",
        "sms_rescheduled": "Janji temu {service} di {branch} dipindah ke {when}. Kode QR untuk check-in: {link}",
        "msg_rescheduled": "Jadwal diganti", "msg_round": "pindah ke-{n}", "msg_delivered_at": "diterima {when}",
        "msg_confirm": "Konfirmasi", "msg_remind": "Pengingat", "msg_pending": "menunggu", "msg_sending": "dikirim",
        "msg_sent": "terkirim", "msg_failed": "dicoba lagi", "msg_dead": "gagal", "msg_superseded": "tidak perlu",
        "msg_skipped": "dilewati", "msg_delivered": "diterima",
        "sms_confirm": "Janji temu {service} di {branch} {when} tercatat. Kode QR untuk check-in: {link}",
        "sms_remind": "Pengingat: janji temu {service} di {branch} {when}. Kode QR untuk check-in: {link}",
        "add_calendar": "Tambahkan ke kalender", "move_title": "Ganti jadwal",
        "move_lead": "Pilih tanggal dan jam lain untuk layanan yang sama.", "move": "Pindahkan ke jam ini",
        "moved": "Jadwal Anda telah diganti. Tunjukkan kode QR di halaman ini; jika tanggalnya berubah, kode yang"
        " lama tidak berlaku lagi.",
        "current": "jadwal Anda", "err_past": "Jam itu sudah lewat.",
        "err_cancelled": "Janji ini sudah dibatalkan.", "err_checked_in": "Anda sudah check-in untuk janji ini.",
        "beyond_horizon": "belum dibuka untuk pemesanan (terlalu jauh ke depan)",
        "page_no_booking": "Janji temu tidak ditemukan. Periksa tautan di e-mail atau pesan Anda.",
        "page_no_online": "Cabang ini tidak menerima janji temu secara online.",
        "page_no_branch": "Cabang tidak ditemukan.",
        "page_rate": "Terlalu banyak percobaan. Coba lagi dalam {n} menit.",
        "page_bad_request": "Permintaan tidak dapat diproses. Kembali dan coba lagi.", "page_title": "Janji temu",
        "err_day": "Tanggal tidak valid.", "err_starts_at": "Waktu tidak valid (RFC 3339 dengan zona waktu).",
        "state_checked_in": "Anda sudah check-in untuk janji ini. Kode QR tidak diperlukan lagi.",
        "state_no_show": "Waktu check-in janji ini sudah lewat.",
        "mail_cancelled_subject": "Janji temu di {branch} pada {when} dibatalkan",
        "mail_cancelled_text": "Halo {name},\n\nJanji temu Anda untuk {service} di {branch} pada {when} (nomor"
        " {booking}) telah dibatalkan. Kode QR-nya tidak berlaku lagi.\n\nBuat janji baru kapan saja di halaman"
        " pemesanan cabang.\nRincian: {link}\n",
        "sms_cancelled": "Janji temu {service} di {branch} {when} telah dibatalkan. Rincian: {link}",
        "msg_cancelled": "Pembatalan", "msg_no_channel": "tidak ada saluran untuk kontak ini",
        "find_title": "Cari janji saya",
        "find_lead": "Masukkan nomor pemesanan dan e-mail atau telepon yang Anda pakai.",
        "find_contact": "E-mail atau telepon", "find": "Cari",
        "err_find": "Tidak ada janji dengan nomor dan kontak itu.",
        "ics_summary": "Janji temu {service} · {branch}",
        "ics_text": "Nomor pemesanan {booking}. Waktu {when} ({zone}). Tunjukkan kode QR di kios; check-in dibuka"
        " {before} menit sebelum dan ditutup {after} menit setelah jadwal. Kode QR, ganti jadwal atau batalkan: {link}",
    },
    "en": {
        "book_title": "Book an appointment", "service": "Service", "day": "Date", "time": "Time", "choose": "Choose",
        "name": "Name", "email": "E-mail", "phone": "Phone (optional)", "book": "Book",
        "no_slots": "No times are available on this date.", "closed_day": "Closed: {reason}",
        "left": "{n} left", "full": "Full", "booked_title": "Your appointment",
        "booked_lead": "Show this QR code at the branch's kiosk when you arrive.",
        "booking_id": "Booking number", "when": "Time", "branch": "Branch",
        "window": "Check-in opens {before} minutes before and closes {after} minutes after your time.",
        "cancel": "Cancel appointment", "cancelled": "This appointment was cancelled.",
        "download": "Download QR (PNG)",
        "err_slot_full": "That time just filled up. Please choose another.",
        "err_day_closed": "The branch takes no appointments on that date.",
        "err_no_slot": "That time is not available.", "err_unknown_service": "That service is not available.",
        "err_name": "Enter your name (up to 120 characters).", "err_email": "That e-mail address is not valid.",
        "err_phone": "That phone number is not valid.", "err_not_active": "This appointment can no longer change.",
        "err_not_found": "Appointment not found.", "err_rate": "Too many requests. Please try again shortly.",
        "not_found": "Page not found.", "privacy": "Your details are used for this appointment only.",
        "appointments": "Appointments", "bookings": "Bookings", "status": "Status", "contact": "Contact",
        "booked": "Booked", "checked_in": "Checked in", "no_show": "No-show", "st_cancelled": "Cancelled",
        "staff_book": "Book for a customer", "reschedule": "Reschedule", "new_time": "New time",
        "show": "Show", "calendar": "Holiday calendar", "settings": "Appointment settings",
        "services": "Bookable services", "slot_minutes": "Slot length (minutes)", "capacity": "Capacity",
        "derived": "derived", "counters": "Counters", "mean": "Mean service (minutes)",
        "quota": "Appointment quota (%)", "save": "Save", "region": "Region",
        "before": "Check-in opens (minutes before)", "after": "Check-in closes (minutes after)",
        "late": "Late arrivals", "late_walk_in": "Become walk-ins", "late_refuse": "Refused",
        "entries": "Holidays & blackouts", "scope": "Scope", "kind": "Kind", "holiday": "Holiday",
        "blackout": "Blackout", "open": "Open", "national": "National holidays & joint leave days", "add": "Add",
        "delete": "Delete", "import": "Import iCal", "export": "Export iCal", "year": "Year", "none": "None yet.",
        "saved": "Saved.", "total": "Total", "branch_pick": "Choose a branch",
        "mail_confirm_subject": "Appointment at {branch}: {when}",
        "mail_confirm_text": "Hello {name},\n\nYour appointment for {service} at {branch} on {when} is booked"
        " (number {booking}).\nShow the attached QR code at the branch's kiosk; check-in opens {before} minutes"
        " before your time and closes {after} minutes after.\n\nView or cancel: {link}\n",
        "mail_remind_subject": "Reminder: appointment at {branch}: {when}",
        "mail_remind_text": "Hello {name},\n\nA reminder of your appointment for {service} at {branch} on {when}"
        " (number {booking}). Bring the attached QR code.\n\nView or cancel: {link}\n",
        "mail_rescheduled_subject": "Appointment at {branch} moved to {when}",
        "mail_rescheduled_text": "Hello {name},\n\nYour appointment for {service} at {branch} (number {booking})"
        " has moved to {when}.\nShow the attached QR code at the branch's kiosk; if the date changed, an earlier"
        " code no longer works. Check-in opens {before} minutes before your time and closes {after} minutes"
        " after.\n\nView, change or cancel: {link}\n",
        "sms_rescheduled": "Appointment for {service} at {branch} moved to {when}. Check-in QR code: {link}",
        "msg_rescheduled": "Moved", "msg_round": "move {n}", "msg_delivered_at": "delivered {when}",
        "msg_confirm": "Confirmation", "msg_remind": "Reminder", "msg_pending": "waiting", "msg_sending": "sending",
        "msg_sent": "sent", "msg_failed": "retrying", "msg_dead": "failed", "msg_superseded": "not needed",
        "msg_skipped": "skipped", "msg_delivered": "delivered",
        "sms_confirm": "Appointment for {service} at {branch} {when} is booked. Check-in QR code: {link}",
        "sms_remind": "Reminder: appointment for {service} at {branch} {when}. Check-in QR code: {link}",
        "add_calendar": "Add to calendar", "move_title": "Change the time",
        "move_lead": "Choose another date and time for the same service.", "move": "Move to this time",
        "moved": "Your appointment has moved. Show the QR code on this page; if the date changed, an earlier code no"
        " longer works.",
        "current": "your time", "err_past": "That time has already passed.",
        "err_cancelled": "This appointment was cancelled.", "err_checked_in": "You have already checked in for this"
        " appointment.",
        "beyond_horizon": "not open for booking yet (too far ahead)",
        "page_no_booking": "Booking not found. Check the link in your e-mail or message.",
        "page_no_online": "This branch does not take bookings online.",
        "page_no_branch": "Branch not found.",
        "page_rate": "Too many attempts. Try again in {n} minutes.",
        "page_bad_request": "The request could not be processed. Go back and try again.", "page_title": "Appointments",
        "err_day": "That date is not valid.", "err_starts_at": "That time is not valid (RFC 3339 with its offset).",
        "state_checked_in": "You have already checked in for this appointment. The QR code is no longer needed.",
        "state_no_show": "The check-in time of this appointment has passed.",
        "mail_cancelled_subject": "Appointment at {branch} on {when} cancelled",
        "mail_cancelled_text": "Hello {name},\n\nYour appointment for {service} at {branch} on {when} (number"
        " {booking}) has been cancelled. Its QR code no longer works.\n\nBook again any time on the branch's booking"
        " page.\nDetails: {link}\n",
        "sms_cancelled": "Appointment for {service} at {branch} {when} has been cancelled. Details: {link}",
        "msg_cancelled": "Cancellation", "msg_no_channel": "no channel for this contact",
        "find_title": "Find my booking", "find_lead": "Enter the booking number and the e-mail or phone you used.",
        "find_contact": "E-mail or phone", "find": "Find",
        "err_find": "No booking matches that number and contact.",
        "ics_summary": "Appointment: {service} · {branch}",
        "ics_text": "Booking number {booking}. Time {when} ({zone}). Show the QR code at the kiosk; check-in opens"
        " {before} minutes before and closes {after} minutes after your time. QR code, change or cancel: {link}",
    },
}  # fmt: skip


# The staff side's words (settings forms' field errors, the calendar's scopes, reasons and notices), kept apart from
# the customers' pages above.
STAFF_WORDS: dict[str, dict[str, str]] = {
    "id": {
        "err_form": "Belum tersimpan: periksa kolom yang ditandai.",
        "err_service_id": "Pilih layanan dari konfigurasi cabang.",
        "err_service_name": "Isi nama layanan (maks. 120 karakter).",
        "err_slot_minutes": "Isi 5-240 menit.", "err_capacity": "Isi 1-500, atau kosongkan agar dihitung otomatis.",
        "err_counters": "Isi 1-100 loket.", "err_mean_service_minutes": "Isi 1-240 menit.",
        "err_quota_pct": "Isi 0-100 %.", "err_priority": "Isi 0-9.", "err_window": "Isi 0-240 menit.",
        "err_late": "Pilih jadi walk-in atau ditolak.",
        "err_region": "Kode wilayah: huruf, angka, - atau _ (maks. 32 karakter), atau kosong.",
        "err_scope": "Cakupan tidak valid: seluruh tenant, wilayah (kode) atau salah satu cabang.",
        "err_scope_branch": "Cabang itu bukan cabang tenant ini.",
        "err_kind": "Jenis tidak dikenal: libur, blackout atau buka.", "err_day": "Tanggal tidak valid.",
        "err_entry_name": "Nama maks. 200 karakter, tanpa baris baru.",
        "err_ics_malformed": "Berkas bukan iCalendar (.ics) yang bisa dibaca.",
        "err_ics_no_start": "Ada acara tanpa tanggal mulai (DTSTART).",
        "err_ics_range": "Ada acara di luar tahun 2000-2100 atau lebih panjang dari setahun.",
        "err_ics_too_many": "Terlalu banyak hari dalam satu impor (maks. 366).",
        "err_ics_too_big": "Berkas terlalu besar (maks. 1 MB).", "err_ics_empty": "Berkas tidak memuat acara.",
        "imported": "{n} entri diimpor.", "import_kind": "Jenis (bila berkas tidak menyebut)",
        "scope_tenant": "Seluruh tenant", "scope_new_region": "Wilayah lain (isi kode)",
        "scope_region_code": "Kode wilayah", "read_only": "hanya baca",
        "closed_bookings": "{n} pemesanan pada hari tutup",
        "closed_bookings_lead": "Hari ini ditutup setelah pemesanan dibuat. Pindahkan atau batalkan pemesanan ini"
        " secara manual di halaman Janji temu (nasabah menerima pesan jadwal baru):",
        "closed_bookings_n": "{n} pemesanan", "closed_bookings_one": "1 pemesanan pada hari tutup",
        "closed_bookings_n_one": "1 pemesanan",
        "service_name": "Nama layanan (untuk nasabah)", "priority": "Prioritas (0-9)", "ticket": "Tiket",
        "ticket_pending": "tiket belum diterima", "derived_n": "otomatis ({n})",
        "not_configured": "tidak ada di konfigurasi cabang: tidak ditawarkan", "inactive": "nonaktif",
        "no_configured": "Konfigurasi cabang belum diterima hub atau tidak memuat layanan aktif.",
        "links_unknown": "Pesan untuk nasabah tidak dapat memuat tautan ke halaman janjinya: alamat publik belum"
        " diatur. Isi 'Alamat publik hub (tautan status)' di pengaturan notifikasi tenant, atau QMS_PUBLIC_URL"
        " (--public-url) pada layanan hub.",
        "lang_field": "Bahasa", "lang_id": "Bahasa Indonesia", "lang_en": "English",
        "msg_no_contact": "tidak ada e-mail atau telepon", "msg_no_provider": "tidak ada penyedia untuk saluran ini",
    },
    "en": {
        "err_form": "Not saved: check the marked fields.",
        "err_service_id": "Choose a service of the branch's configuration.",
        "err_service_name": "Enter the service's name (up to 120 characters).",
        "err_slot_minutes": "Enter 5-240 minutes.", "err_capacity": "Enter 1-500, or leave it empty to derive it.",
        "err_counters": "Enter 1-100 counters.", "err_mean_service_minutes": "Enter 1-240 minutes.",
        "err_quota_pct": "Enter 0-100 %.", "err_priority": "Enter 0-9.", "err_window": "Enter 0-240 minutes.",
        "err_late": "Choose become walk-ins or refused.",
        "err_region": "Region code: letters, digits, - or _ (up to 32 characters), or empty.",
        "err_scope": "Not a valid scope: the whole tenant, a region (code) or one of its branches.",
        "err_scope_branch": "That branch is not one of this tenant's.",
        "err_kind": "Unknown kind: holiday, blackout or open.", "err_day": "That date is not valid.",
        "err_entry_name": "Name up to 200 characters, on one line.",
        "err_ics_malformed": "The file is not an iCalendar (.ics) file that can be read.",
        "err_ics_no_start": "An event has no start date (DTSTART).",
        "err_ics_range": "An event lies outside 2000-2100 or is longer than a year.",
        "err_ics_too_many": "Too many days in one import (at most 366).",
        "err_ics_too_big": "The file is too large (at most 1 MB).", "err_ics_empty": "The file holds no event.",
        "imported": "{n} entries imported.", "import_kind": "Kind (when the file does not say)",
        "scope_tenant": "Whole tenant", "scope_new_region": "Another region (enter its code)",
        "scope_region_code": "Region code", "read_only": "read-only",
        "closed_bookings": "{n} bookings on closed days",
        "closed_bookings_lead": "These days were closed after the bookings were made. Move or cancel them by hand on"
        " the Appointments page (the customer is sent the new time):",
        "closed_bookings_n": "{n} bookings", "closed_bookings_one": "1 booking on a closed day",
        "closed_bookings_n_one": "1 booking",
        "service_name": "Service name (shown to customers)", "priority": "Priority (0-9)", "ticket": "Ticket",
        "ticket_pending": "ticket not received yet", "derived_n": "derived ({n})",
        "not_configured": "not in the branch's configuration: not offered", "inactive": "inactive",
        "no_configured": "The hub has no configuration of this branch yet, or it has no active service.",
        "links_unknown": "Customers' messages cannot link to their booking's page: no public address is set."
        " Set 'Hub's public address (status links)' in the tenant's notification settings, or QMS_PUBLIC_URL"
        " (--public-url) in the hub's service.",
        "lang_field": "Language", "lang_id": "Bahasa Indonesia", "lang_en": "English",
        "msg_no_contact": "no e-mail or phone", "msg_no_provider": "no provider for this channel",
    },
}  # fmt: skip
for _lang, _words in STAFF_WORDS.items():
    WORDS[_lang].update(_words)


def pick(lang: str | None) -> str:
    """A supported language (Indonesian by default)."""
    return lang if lang in LANGS else "id"
