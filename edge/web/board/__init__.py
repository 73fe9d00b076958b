"""Display boards: the `/board` page, its state and event stream, announcement audio and signage media."""
