"""Identity (issue 14): HQ accounts, roles and scope, sessions, API tokens, OIDC, SAML."""

from __future__ import annotations

revision = "0006_identity"
down_revision = "0005_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
