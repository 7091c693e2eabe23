"""The daemon's side of attaching: the unix-socket server that serves one Runtime to local
clients (server.py), the JSON-lines protocol and where the socket lives (protocol.py), the
codec of views and events (wire.py), systemd notification (notify.py), and the client that
gives an attached console or `l3tui run` the same `RuntimeAPI` (client.py)."""
