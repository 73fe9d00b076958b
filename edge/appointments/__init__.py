"""Appointments at the branch (issue 15): the bookings the hub pushed for today and tomorrow, and the offline
check-in of a signed QR at the kiosk."""
