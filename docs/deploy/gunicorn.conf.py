"""gunicorn settings for the sync server's web application (see docs/deploy.md).

Installed as /etc/crmsync/gunicorn.conf.py; crmsync-web.service starts
`gunicorn --config /etc/crmsync/gunicorn.conf.py` in /opt/crmsync. The Django settings
themselves come from /opt/crmsync/.env, as for every other process of the server.
"""

wsgi_app = "syncsite.wsgi:application"

# nginx on this machine is the only client: TLS ends there, so gunicorn listens on loopback.
bind = "127.0.0.1:8000"

# Requests are short database work (a sync only gets queued here; the workers run it), so a
# few synchronous workers serve many users. gunicorn's rule of thumb is 2 x cores + 1.
workers = 3

# The slowest pages are the CSV exports of a long history; nginx waits 75 s (nginx.conf).
timeout = 60
# On `systemctl stop` / `reload`, requests under way get this long to finish.
graceful_timeout = 30

# Believe X-Forwarded-Proto and X-Forwarded-For only from nginx on this machine.
forwarded_allow_ips = "127.0.0.1,::1"

# To the journal (journalctl -u crmsync-web): access log on stdout, errors on stderr.
accesslog = "-"
errorlog = "-"

# Restart each worker now and then so that memory cannot creep up over weeks.
max_requests = 1000
max_requests_jitter = 100

# gunicorn 25.1+ opens a control socket in the service user's home by default; it is not
# needed (systemctl reload sends HUP), and the service user's home is not for runtime files.
control_socket_disable = True
