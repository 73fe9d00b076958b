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
        "ics_summary": "Appointment: {service} · {branch}",
        "ics_text": "Booking number {booking}. Time {when} ({zone}). Show the QR code at the kiosk; check-in opens"
        " {before} minutes before and closes {after} minutes after your time. QR code, change or cancel: {link}",
    },
}  # fmt: skip


def pick(lang: str | None) -> str:
    """A supported language (Indonesian by default)."""
    return lang if lang in LANGS else "id"
