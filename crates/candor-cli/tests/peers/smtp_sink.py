"""A real SMTP server for Candor's journey tests (aiosmtpd from PyPI).

Every message it accepts is parsed with Python's own `email` package (an independent MIME
parser) and written to OUTDIR as N.json: envelope, headers, decoded text and HTML parts, and
checks of the raw bytes (CRLF line ends, line lengths). Prints "listening PORT" when ready.

With --count it only counts (for benchmarks) and prints "received N" when its stdin closes.

--starttls CERT KEY offers (and requires) STARTTLS; --tls CERT KEY speaks TLS from the first
byte; --auth USER:PASS requires AUTH with that login (over TLS).

usage: smtp_sink.py OUTDIR [--reject ADDRESS ...] [--count] [--starttls|--tls CERT KEY]
                    [--auth USER:PASS]
"""
import asyncio
import email
import email.policy
import json
import os
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, outdir, reject, count_only=False):
        self.outdir = outdir
        self.reject = set(reject)
        self.count_only = count_only
        self.n = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.count_only:
            self.n += 1
            return "250 OK queued"
        raw = envelope.original_content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            ct = part.get_content_type()
            if ct in ("text/plain", "text/html"):
                parts[ct] = part.get_content()
        lines = raw.split(b"\r\n")
        doc = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[k, str(v)] for k, v in msg.items()],
            "content_type": msg.get_content_type(),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
            "max_line": max(len(l) for l in lines),
            "bare_lf": b"\n" in raw.replace(b"\r\n", b""),
            "defects": [str(d) for d in msg.defects],
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "login": session.auth_data.decode() if isinstance(session.auth_data, bytes) else None,
        }
        with self.lock:
            self.n += 1
            n = self.n
        tmp = os.path.join(self.outdir, f".{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(self.outdir, f"{n}.json"))
        return "250 OK queued"


def main():
    outdir = sys.argv[1]
    reject = []
    count_only = False
    tls_mode, cert, key, login = None, None, None, None
    args = sys.argv[2:]
    while args:
        if args[0] in ("--starttls", "--tls"):
            tls_mode, cert, key = args[0][2:], args[1], args[2]
            args = args[3:]
        elif args[0] == "--auth":
            login = args[1].encode().split(b":", 1)
            args = args[2:]
        elif args[0] == "--count":
            count_only = True
            args = args[1:]
        elif args[0] == "--reject":
            reject.append(args[1])
            args = args[2:]
        else:
            raise SystemExit(f"unknown argument {args[0]}")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sink = Sink(outdir, reject, count_only)
    kwargs = {}
    if tls_mode:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        if tls_mode == "tls":
            kwargs["ssl_context"] = ctx
            # aiosmtpd only knows of TLS it negotiated itself (STARTTLS); this transport is TLS
            # from the first byte, so AUTH may be offered on it.
            kwargs["auth_require_tls"] = False
        else:
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = True
    if login:

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = [auth_data.login, auth_data.password] == login
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
    controller = Controller(sink, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin (or dies)
    finally:
        controller.stop()
    print(f"received {sink.n}", flush=True)


if __name__ == "__main__":
    main()
