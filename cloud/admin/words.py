"""The console areas' words in Indonesian (default) and English; the page language comes from `?lang=` or the
`qms_lang` cookie it sets."""

from __future__ import annotations

from typing import Any

LANGS = ("id", "en")
COOKIE = "qms_lang"

WORDS: dict[str, dict[str, str]] = {
    "id": {
        "console": "Konsol HQ", "audit": "Audit", "branches": "Cabang", "config": "Layanan & loket",
        "approvals": "Persetujuan", "time": "Waktu", "source": "Sumber", "tenant": "Tenant", "branch": "Cabang",
        "actor": "Pengguna", "action": "Aksi", "target": "Objek", "from": "Dari", "details": "Rincian",
        "since": "Dari tanggal", "until": "Sampai tanggal", "filter": "Saring", "export": "Ekspor CSV",
        "no_entries": "Belum ada catatan.", "hub": "HQ", "branch_src": "cabang",
        "new_branch": "Cabang baru", "name": "Nama", "timezone": "Zona waktu", "address": "Alamat",
        "hours": "Jam buka", "areas": "Area/lantai (satu per baris: id: nama)", "status": "Status",
        "save": "Simpan", "create": "Buat", "retire": "Nonaktifkan", "reactivate": "Aktifkan lagi",
        "delete": "Hapus", "active": "aktif", "retired": "nonaktif", "closed": "tutup",
        "enrolment_code": "Kode pendaftaran", "new_code": "Buat kode pendaftaran",
        "code_once": "Kode ini hanya ditampilkan sekali; berlaku sampai", "edit": "Ubah",
        "mon": "Senin", "tue": "Selasa", "wed": "Rabu", "thu": "Kamis", "fri": "Jumat", "sat": "Sabtu",
        "sun": "Minggu", "opens": "buka", "closes": "tutup",
        "err_branch_id": "ID cabang: huruf kecil, angka dan tanda hubung, maks. 64.",
        "err_name": "Nama wajib diisi (maks. 120 karakter).", "err_timezone": "Zona waktu tidak dikenal.",
        "err_address": "Alamat terlalu panjang (maks. 500).",
        "err_hours": "Jam buka HH:MM dan harus sebelum jam tutup.",
        "err_areas": "Tiap baris: id: nama (id huruf/angka).", "err_areas_duplicate": "ID area ganda.",
        "err_exists": "Cabang dengan ID ini sudah ada.", "err_tenant": "Tenant tidak valid atau bukan milik Anda.",
        "in_use": "Cabang masih punya layanan aktif — nonaktifkan saja, jangan dihapus:",
        "services": "Layanan", "counters": "Loket", "prefix": "Prefiks", "area": "Area", "sla": "SLA (menit)",
        "name_en": "Nama (Inggris)", "id": "ID", "add_or_edit_service": "Tambah/ubah layanan",
        "add_or_edit_counter": "Tambah/ubah loket", "runs": "Cabang menjalankan", "based_on": "Diubah dari versi",
        "history": "Riwayat versi", "rollback": "Kembalikan ke versi ini", "distributed": "Didistribusikan",
        "conflict": "Konflik: cabang menjalankan versi lebih baru —", "invalid": "Konfigurasi ditolak:",
        "requested": "Perubahan menunggu persetujuan:", "no_nats": "Hub tidak terhubung ke NATS: tidak bisa"
        " mendistribusikan.", "apply_to": "Terapkan juga ke cabang", "no_config": "Cabang belum melaporkan"
        " konfigurasi.", "approvals_on": "Persetujuan wajib untuk tenant", "switch_on": "Aktifkan",
        "switch_off": "Matikan", "approve": "Setujui", "reject": "Tolak", "requested_by": "Diminta oleh",
        "expires": "Kedaluwarsa", "pending": "menunggu", "approved": "disetujui", "rejected": "ditolak",
        "expired": "kedaluwarsa", "deciding": "sedang diputuskan",
        "own_request": "Anda tidak bisa menyetujui permintaan Anda sendiri.",
        "status_approved": "Sudah disetujui.", "status_rejected": "Sudah ditolak.",
        "status_expired": "Permintaan sudah kedaluwarsa.", "no_requests": "Tidak ada permintaan.",
        "diff": "Perubahan", "on_its_way": "Ditampilkan: v{n} dari HQ, belum diterapkan di cabang.",
        "closed_day": "tutup", "fleet": "Perangkat", "device": "Perangkat", "type": "Jenis", "online": "daring",
        "offline": "luring", "last_seen": "Terakhir terlihat",
        "config_acked": "Versi konfigurasi (diterapkan/ditetapkan)",
        "kiosk": "kios", "display": "papan", "button": "tombol panggil", "led": "layar LED",
        "printer": "printer tiket", "all": "semua",
        "devices_online": "perangkat daring", "no_devices": "Belum ada perangkat yang dilaporkan cabang.",
        "never": "belum pernah", "supervisor": "Supervisor", "floor": "Lantai layanan", "counter": "Loket",
        "presence": "Kehadiran", "current": "Tiket saat ini", "waiting": "Menunggu", "held": "Ditunda",
        "oldest": "Tunggu terlama", "minutes": "menit", "available": "tersedia", "busy": "sibuk", "break": "istirahat",
        "called": "dipanggil", "serving": "dilayani", "read_only": "Hanya lihat: tindakan dilakukan di cabang.",
        "liveness": "Koneksi cabang", "offline_since": "luring sejak", "never connected": "belum pernah terhubung",
        "watch": "Lihat", "service": "Layanan", "staff": "Akun petugas", "username": "Nama pengguna",
        "role": "Peran", "password": "Kata sandi", "password_hint": "Kosongkan untuk tidak mengubah; min. 10 karakter.",
        "agent": "petugas loket", "supervisor_role": "supervisor", "admin": "admin cabang",
        "staff_sent": "Dikirim ke cabang:",
        "err_username": "Nama pengguna: huruf, angka, titik, garis bawah, tanda hubung.", "err_role": "Pilih peran.",
        "err_counters": "Loket tidak dikenal di cabang ini.", "err_password": "Kata sandi minimal 10 karakter.",
        "updated": "Diubah", "open_counter": "Buka", "pause_counter": "Istirahat",
        "close_counter": "Tutup", "outcome_done": "Dijalankan di cabang.",
        "outcome_offline": "Ditolak: cabang luring, perintah tidak dikirim.",
        "outcome_refused": "Cabang menolak perintah (mis. loket masih melayani).",
        "outcome_noanswer": "Cabang tidak menjawab dalam 5 detik; tidak ada yang berubah di HQ.",
        "refused": "ditolak (aturan cabang atau konflik)",
        "call_next": "Panggil berikutnya", "live_tickets": "Tiket aktif", "ticket": "Tiket", "transfer": "Alihkan",
        "to_service": "ke layanan", "cancel_ticket": "Batalkan", "reason": "Alasan (opsional)",
        "outcome_called": "Dipanggil di cabang:", "outcome_empty": "Tidak ada tiket yang bisa dipanggil:",
        "empty": "antrean kosong", "no_compatible": "tidak ada tiket untuk layanan loket ini",
        "counter_unavailable": "loket tidak tersedia", "no_live_tickets": "Tidak ada tiket aktif.",
        "session_ended": "Sesi berakhir. Masuk lagi untuk melanjutkan.", "signin": "Masuk",
        "staff_conflict": "Akun sudah berubah sejak permintaan dibuat; tolak dan ajukan ulang.",
        "push_title": "Kirim konfigurasi perangkat", "push_branches": "Ke cabang",
        "push_config": "Konfigurasi (objek JSON)", "push_button": "Kirim",
        "push_hint": "Setiap perangkat aktif jenis ini di cabang terpilih mendapat versi baru; perangkat mengambil,"
        " menerapkan dan mengonfirmasinya — kolom versi di atas menunjukkan konfirmasinya.",
        "outcome_pushed": "versi baru untuk perangkat:", "err_device_type": "Pilih jenis perangkat.",
        "err_device_config": "Konfigurasi harus berupa objek JSON (maks. 64 KiB).",
        "err_push_branches": "Pilih satu atau lebih cabang Anda.",
        "nats_step": "Satu langkah lagi sebelum perangkat cabang bisa terhubung — di host NATS, dengan QMS_CLOUD_DB"
        " milik hub, jalankan:",
        "nats_step_why": "nats-server membaca pengguna cabang dari berkas authorization dan baru menerima kunci baru"
        " setelah berkas dibuat ulang dan dimuat ulang.",
        "nats_updated": "Pengguna NATS diperbarui pada", "nats_failed": "Pengguna NATS TIDAK diperbarui pada",
        "nats_reloaded": "nats-server sudah memuat ulang; perangkat cabang bisa terhubung tanpa langkah manual.",
        "nats_unreloaded": "Berkas ditulis; muat ulang nats-server sendiri (QMS_NATS_PID_FILE tidak diatur).",
        "rekey": "Kunci NATS baru",
        "yes": "ya", "no": "tidak", "lang_other": "English",
    },
    "en": {
        "console": "HQ console", "audit": "Audit", "branches": "Branches", "config": "Services & counters",
        "approvals": "Approvals", "time": "Time", "source": "Source", "tenant": "Tenant", "branch": "Branch",
        "actor": "User", "action": "Action", "target": "Object", "from": "From", "details": "Details",
        "since": "From date", "until": "To date", "filter": "Filter", "export": "Export CSV",
        "no_entries": "No entries yet.", "hub": "HQ", "branch_src": "branch",
        "new_branch": "New branch", "name": "Name", "timezone": "Time zone", "address": "Address",
        "hours": "Opening hours", "areas": "Areas/floors (one per line: id: name)", "status": "Status",
        "save": "Save", "create": "Create", "retire": "Retire", "reactivate": "Reactivate",
        "delete": "Delete", "active": "active", "retired": "retired", "closed": "closed",
        "enrolment_code": "Enrolment code", "new_code": "Create enrolment code",
        "code_once": "This code is shown only once; valid until", "edit": "Edit",
        "mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
        "sat": "Saturday", "sun": "Sunday", "opens": "opens", "closes": "closes",
        "err_branch_id": "Branch id: lower-case letters, digits and hyphens, at most 64.",
        "err_name": "A name is required (at most 120 characters).", "err_timezone": "Unknown time zone.",
        "err_address": "The address is too long (at most 500).",
        "err_hours": "Opening time HH:MM, before the closing time.",
        "err_areas": "Each line: id: name (id letters/digits).", "err_areas_duplicate": "Duplicate area id.",
        "err_exists": "A branch with this id exists already.", "err_tenant": "Invalid tenant, or not yours.",
        "in_use": "The branch still has active services — retire it instead of deleting it:",
        "services": "Services", "counters": "Counters", "prefix": "Prefix", "area": "Area", "sla": "SLA (minutes)",
        "name_en": "Name (English)", "id": "ID", "add_or_edit_service": "Add/edit a service",
        "add_or_edit_counter": "Add/edit a counter", "runs": "The branch runs", "based_on": "Edited from version",
        "history": "Version history", "rollback": "Roll back to this version", "distributed": "Distributed",
        "conflict": "Conflict: the branch runs a newer version —", "invalid": "Configuration refused:",
        "requested": "Change waiting for approval:", "no_nats": "The hub is not connected to NATS: cannot"
        " distribute.", "apply_to": "Apply to these branches too", "no_config": "The branch has not reported a"
        " configuration yet.", "approvals_on": "Approval required for tenant", "switch_on": "Turn on",
        "switch_off": "Turn off", "approve": "Approve", "reject": "Reject", "requested_by": "Requested by",
        "expires": "Expires", "pending": "pending", "approved": "approved", "rejected": "rejected",
        "expired": "expired", "deciding": "being decided", "own_request": "You cannot approve your own request.",
        "status_approved": "Already approved.", "status_rejected": "Already rejected.",
        "status_expired": "The request has expired.", "no_requests": "No requests.",
        "diff": "Changes", "on_its_way": "Shown: HQ's v{n}, not applied at the branch yet.",
        "closed_day": "closed", "fleet": "Devices", "device": "Device", "type": "Type", "online": "online",
        "offline": "offline", "last_seen": "Last seen", "config_acked": "Config version (applied/assigned)",
        "kiosk": "kiosk", "display": "board", "button": "call button", "led": "LED display",
        "printer": "ticket printer", "all": "all",
        "devices_online": "devices online", "no_devices": "No branch has reported devices yet.",
        "never": "never", "supervisor": "Supervisor", "floor": "Service floor", "counter": "Counter",
        "presence": "Presence", "current": "Current ticket", "waiting": "Waiting", "held": "On hold",
        "oldest": "Longest wait", "minutes": "min", "available": "available", "busy": "busy", "break": "on break",
        "called": "called", "serving": "serving", "read_only": "Read-only: actions are taken at the branch.",
        "liveness": "Branch link", "offline_since": "offline since", "never connected": "never connected",
        "watch": "Watch", "service": "Service", "staff": "Staff accounts", "username": "Username",
        "role": "Role", "password": "Password", "password_hint": "Leave empty to keep it; at least 10 characters.",
        "agent": "counter agent", "supervisor_role": "supervisor", "admin": "branch admin",
        "staff_sent": "Sent to the branch:",
        "err_username": "Username: letters, digits, dot, underscore, hyphen.", "err_role": "Choose a role.",
        "err_counters": "Unknown counter at this branch.", "err_password": "The password needs at least 10 characters.",
        "updated": "Changed", "open_counter": "Open", "pause_counter": "Break",
        "close_counter": "Close", "outcome_done": "Done at the branch.",
        "outcome_offline": "Refused: the branch is offline, nothing was sent.",
        "outcome_refused": "The branch refused it (e.g. the counter is still serving).",
        "outcome_noanswer": "The branch did not answer within 5 s; nothing changed at HQ.",
        "refused": "refused (the branch's rules or a conflict)",
        "call_next": "Call next", "live_tickets": "Live tickets", "ticket": "Ticket", "transfer": "Transfer",
        "to_service": "to service", "cancel_ticket": "Cancel", "reason": "Reason (optional)",
        "outcome_called": "Called at the branch:", "outcome_empty": "No ticket to call:",
        "empty": "the queue is empty", "no_compatible": "no ticket for this counter's services",
        "counter_unavailable": "the counter is not available", "no_live_tickets": "No live tickets.",
        "session_ended": "Your session has ended. Sign in again to continue.", "signin": "Sign in",
        "staff_conflict": "The account changed after the request was made; reject it and ask again.",
        "push_title": "Push a device configuration", "push_branches": "To branches",
        "push_config": "Configuration (a JSON object)", "push_button": "Push",
        "push_hint": "Every active device of this type at the chosen branches gets a new version; each fetches, applies"
        " and acknowledges it — the version column above shows the acknowledgements.",
        "outcome_pushed": "new version for devices:", "err_device_type": "Choose a device type.",
        "err_device_config": "The configuration must be a JSON object (at most 64 KiB).",
        "err_push_branches": "Choose one or more of your branches.",
        "nats_step": "One more step before the branch's appliance can connect — on the NATS host, with the hub's"
        " QMS_CLOUD_DB, run:",
        "nats_step_why": "nats-server reads its branch users from an authorization file and accepts the new key only"
        " once that file is regenerated and reloaded.",
        "nats_updated": "NATS users updated at", "nats_failed": "NATS users NOT updated at",
        "nats_reloaded": "nats-server reloaded them; the branch's appliance connects with no manual step.",
        "nats_unreloaded": "File written; reload nats-server yourself (QMS_NATS_PID_FILE is not set).",
        "rekey": "New NATS key",
        "yes": "yes", "no": "no", "lang_other": "Bahasa Indonesia",
    },
}  # fmt: skip


def pick_lang(query: str | None, cookie: str | None) -> str:
    """`?lang=` first, then the cookie, else Indonesian."""
    for value in (query, cookie):
        if value in LANGS:
            return str(value)
    return "id"


def context(lang: str) -> dict[str, Any]:
    """Template variables for the language: `w` (the words), `lang`, `other` (the other language)."""
    return {"w": WORDS[lang], "lang": lang, "other": "en" if lang == "id" else "id"}
