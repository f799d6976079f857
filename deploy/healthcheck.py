"""Exit 0 when this host's web process answers GET /healthz with 200, else 1 (compose's healthcheck).

Standard library only. It asks gunicorn directly (GUNICORN_BIND's port on
127.0.0.1) as the proxy would: with the site's host name (the first of
ALLOWED_HOSTS) and, when SITE_URL is https, X-Forwarded-Proto: https, so
SECURE_SSL_REDIRECT does not answer with a redirect.
"""

import http.client
import os
import sys


def main() -> int:
    port = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").rpartition(":")[2]
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost").split(",") if h.strip()]
    host = next((h for h in hosts if h != "*" and not h.startswith(".")), "localhost")
    headers = {"Host": host}
    if os.environ.get("SITE_URL", "").startswith("https://"):
        headers["X-Forwarded-Proto"] = "https"
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    try:
        connection.request("GET", "/healthz", headers=headers)
        response = connection.getresponse()
        body = response.read(2000).decode("utf-8", "replace")
    except OSError as exc:
        print(f"healthz: no answer on port {port}: {exc}", file=sys.stderr)
        return 1
    if response.status != 200:
        print(f"healthz: {response.status} {body}", file=sys.stderr)
        return 1
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
