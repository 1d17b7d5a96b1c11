"""Serving a program to members on other machines (`rstack program serve`): `store` (SQLite
state), `claims` (untrusted submissions, verification), `app` (the HTTP API). The client side
(join, pull, submit, verify) is `rstack.program.remote`.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from ..spec import ProgramError


def serve(root: Path, *, host: str = "127.0.0.1", port: int = 0, tls_cert: str | None = None,
          tls_key: str | None = None, insecure: bool = False, settings=None, echo=print) -> None:
    """Serve the project's program until interrupted; the first line echoed is the URL."""
    import uvicorn

    from ...atomic import write_text
    from ..kb import KnowledgeBase
    from ..spec import load_program
    from .app import Settings, create_app, is_loopback, owner_token, server_dir

    root = Path(root)
    if bool(tls_cert) != bool(tls_key):
        raise ProgramError("--tls-cert and --tls-key go together", hint="give both, or neither")
    if not is_loopback(host) and not tls_cert and not insecure:
        raise ProgramError(f"refusing to serve on {host} without TLS: member tokens would cross "
                           "the network in clear",
                           hint="give --tls-cert/--tls-key, or keep 127.0.0.1 and expose it through "
                                "an SSH tunnel, a VPN or a TLS proxy (docs/program.md); "
                                "--insecure if the network is trusted")
    program = load_program(root)
    if KnowledgeBase.read(root, program.name).champion is None:
        raise ProgramError(f"program {program.name!r} has no champion yet; members improve on one",
                           hint="rstack program baseline, then rstack program serve")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ProgramError(f"cannot listen on {host}:{port} ({exc.strerror})",
                           hint="pick another --port, or stop what holds it") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if tls_cert else 'http'}://{shown}:{bound}"
    settings = settings or Settings()
    settings.base_url = url
    app = create_app(root, settings)
    app.state.store.ensure_owner(owner_token(root))
    write_text(server_dir(root) / "url", url + "\n")
    echo(url)
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
