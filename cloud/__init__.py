"""The HQ hub; filled by a later issue."""
