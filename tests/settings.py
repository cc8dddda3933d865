"""Settings for the test suite: the real settings with fixed test-only keys.

DATABASE_URL passes through, so the same suite runs on SQLite and on PostgreSQL.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
# A fixed Fernet key for tests only (never used outside the suite).
os.environ.setdefault("ENCRYPTION_KEYS", "x4Kp7eHk0iG1w2l3Xl8m2nV2mC8wqk9D0c3hQmO0bq8=")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="syncsite-test-var-"))
os.environ.setdefault("ATTACHMENT_ROOTS", tempfile.mkdtemp(prefix="syncsite-test-share-"))
# ewsim, the loopback simulator every test talks to, is reached through the operator's
# switch like any on-premises server would be (security/outbound.py), not around it.
os.environ.setdefault("MAILBOX_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
os.environ["DEBUG"] = "false"

from syncsite.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The test client and the browser tests speak plain http to the test server; production's
# HTTPS-only settings are checked by tests/security/test_deploy_check.py in their own process.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0

# More kinds of CRM: "limited", for the tests of switching an organization's CRM connection
# and of the options a CRM cannot honour; "memory", a CRM kept in the process's memory, for
# running the engine end to end against a CRM other than the built-in store.
SYNC_CRM_KINDS = {**SYNC_CRM_KINDS,  # noqa: F405
                  # Tested over raynetsim; not offered by the server until it is complete.
                  "raynet": "engine.crmstore.raynet.RaynetCrm",
                  "limited": "tests.crm_kinds.LimitedCrm",
                  "memory": "tests.engine.crmstore.memory.MemoryCrm"}
