"""Docker HEALTHCHECK: exit 0 when ``/healthz`` on this container answers 200 (liveness only).

Readiness (``/readyz``: database writable, at head) is left to the load balancer, so a full
or read-only disk takes the app out of rotation without Docker restarting it in a loop.
"""

import os
import sys
import urllib.request

URL = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz"

try:
    with urllib.request.urlopen(URL, timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError:
    sys.exit(1)
