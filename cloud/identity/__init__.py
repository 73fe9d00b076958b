"""Identity (issue 14): HQ accounts, roles and scope, sessions, API tokens, OIDC, SAML."""
