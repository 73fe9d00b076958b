"""Appointments (issue 15): calendar, slots, bookings, signed check-in QR."""
