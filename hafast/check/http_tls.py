"""SSL_GET's TLS client context: what a top-level ``SSL {}`` block asks for.

Made once per block (and ``tls_compliant``) and shared by every SSL_GET check and
by ``genhash -S``; the handshake itself runs in :class:`hafast.check.http_exchange.Exchange`.

Example::

    >>> ctx = client_context()
    >>> ctx is client_context(), ctx.verify_mode == ssl.CERT_NONE
    (True, True)
"""

from __future__ import annotations

import ssl

from hafast.config.model import SslContext

__all__ = ["client_context"]

_CONTEXTS: dict[tuple[SslContext | None, bool], ssl.SSLContext] = {}


def client_context(conf: SslContext | None = None, *, compliant: bool = False) -> ssl.SSLContext:
    """The TLS client context for SSL_GET (cached per top-level ``SSL {}`` block).

    As keepalived: no certificate verification (a health check asks "does it
    answer", not "is it who it claims"); ``ca`` is loaded, ``certificate``/``key``
    (with ``password``) are presented when the server asks for a client
    certificate.  ``compliant`` is ``tls_compliant`` (a close_notify at the end).
    """
    key = (conf, compliant)
    ctx = _CONTEXTS.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if conf is not None:
        if conf.ca:
            ctx.load_verify_locations(cafile=conf.ca)
        if conf.certificate:
            ctx.load_cert_chain(conf.certificate, conf.key or None, password=conf.password)
    _CONTEXTS[key] = ctx
    return ctx

