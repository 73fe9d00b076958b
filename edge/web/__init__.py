"""The appliance's HTTP surface: the JSON API, the live event stream and (later) the staff/kiosk/board pages."""
