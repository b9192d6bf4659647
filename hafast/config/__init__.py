"""keepalived.conf -> typed model (lexer, grammar, model, loader, diff)."""
