"""Spoken announcements: phrases, per-language voice packs, WAV assembly, outputs and the per-area queue."""
