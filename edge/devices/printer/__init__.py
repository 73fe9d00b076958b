"""ESC/POS ticket printing: a pure layout, its encoding and TCP delivery, and a PNG preview."""
