"""Settings for the benchmarks against Raynet (raynetsim): the server's settings with the
Raynet kind offered (it is not, yet, in production: docs/raynet.md) and the web server
reached over plain http on loopback, as the tests reach theirs (production's TLS is nginx's).
"""

from syncsite.settings import *  # noqa: F403

SYNC_CRM_KINDS = {**SYNC_CRM_KINDS, "raynet": "engine.crmstore.raynet.RaynetCrm"}  # noqa: F405
SECURE_SSL_REDIRECT = False
