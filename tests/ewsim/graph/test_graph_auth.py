"""Token endpoint, OpenID configuration (over TLS, as MSAL needs) and the access errors an
administrator's test connection meets."""

from __future__ import annotations

import json
import ssl
import urllib.request

from .client import Graph, call, token


def test_client_credentials_token_opens_the_mailbox(ewsim):
    graph = Graph.connect(ewsim)
    answer = graph.get("mailFolders/inbox")
    assert answer.status == 200
    assert answer.json["displayName"] == "Inbox"
    assert answer.headers["request-id"]


def test_wrong_tenant_wrong_secret_and_unknown_app_are_told_apart(ewsim):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    wrong_tenant = token(ewsim, tenant="no-such-tenant")
    assert wrong_tenant.status == 400
    assert wrong_tenant.json["error_description"].startswith("AADSTS90002")
    wrong_secret = token(ewsim, secret="nope")
    assert wrong_secret.status == 401
    assert wrong_secret.json["error"] == "invalid_client"
    assert wrong_secret.json["error_description"].startswith("AADSTS7000215")
    unknown_app = token(ewsim, client_id="app-2")
    assert unknown_app.status == 400
    assert unknown_app.json["error_description"].startswith("AADSTS700016")


def test_missing_and_unknown_and_expired_tokens_are_401(ewsim):
    graph = Graph.connect(ewsim)
    missing = call("GET", graph.url("mailFolders"))
    assert missing.status == 401 and missing.code == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in missing.headers
    unknown = call("GET", graph.url("mailFolders"), headers={"Authorization": "Bearer x.y.z"})
    assert unknown.status == 401 and unknown.code == "InvalidAuthenticationToken"
    ewsim.control.expire_tokens()
    expired = graph.get("mailFolders")
    assert expired.status == 401
    assert "expired" in expired.json["error"]["message"]
    fresh = token(ewsim)   # a new token works again
    assert Graph(ewsim, fresh.json["access_token"]).get("mailFolders").status == 200


def test_token_without_admin_consent_is_issued_but_graph_answers_403(ewsim):
    graph = Graph.connect(ewsim)
    ewsim.control.set_app("app-1", admin_consent=False)
    assert token(ewsim).status == 200
    denied = graph.get("mailFolders")
    assert denied.status == 403 and denied.code == "ErrorAccessDenied"


def test_app_limited_to_some_mailboxes_is_denied_the_others(ewsim):
    ewsim.server.store.add_user("bob@example.com", "bob-pw")
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1",
                          can_impersonate=["alice@example.com"])
    graph = Graph(ewsim, token(ewsim).json["access_token"])
    assert graph.get("mailFolders").status == 200
    bob = graph.get("/users/bob@example.com/mailFolders")
    assert bob.status == 403 and bob.code == "ErrorAccessDenied"


def test_unknown_and_unlicensed_mailboxes_are_404_with_their_codes(ewsim):
    graph = Graph.connect(ewsim)
    unknown = graph.get("/users/nobody@example.com/mailFolders")
    assert unknown.status == 404 and unknown.code == "ErrorInvalidUser"
    ewsim.control.set_mailbox("alice@example.com", rest_enabled=False)
    unlicensed = graph.get("mailFolders")
    assert unlicensed.status == 404 and unlicensed.code == "MailboxNotEnabledForRESTAPI"
    ewsim.control.set_mailbox("alice@example.com", rest_enabled=True)
    assert graph.get("mailFolders").status == 200


def test_user_token_opens_me_but_app_token_cannot(ewsim):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    form = (b"client_id=app-1&client_secret=app-secret&grant_type=password"
            b"&username=alice@example.com&password=alice-secret")
    answer = call("POST", f"{ewsim.base_url}/tenant-1/oauth2/v2.0/token", raw=form,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    me = call("GET", f"{ewsim.graph_url}/me/mailFolders/inbox",
              headers={"Authorization": f"Bearer {answer.json['access_token']}"})
    assert me.status == 200 and me.json["displayName"] == "Inbox"
    app = Graph.connect(ewsim).get("/me/mailFolders")
    assert app.status == 400 and app.code == "BadRequest"


def test_openid_configuration_over_tls_names_https_endpoints_of_the_tenant(ewsim):
    ewsim.control.add_app("app-1", "app-secret", tenant="tenant-1")
    context = ssl.create_default_context(cafile=ewsim.tls_ca_file)
    url = f"{ewsim.https_base_url}/tenant-1/v2.0/.well-known/openid-configuration"
    with urllib.request.urlopen(url, context=context, timeout=30) as resp:
        config = json.loads(resp.read())
    assert config["token_endpoint"] == f"{ewsim.https_base_url}/tenant-1/oauth2/v2.0/token"
    assert config["authorization_endpoint"].startswith("https://")
    # The announced token endpoint works over TLS.
    form = (b"client_id=app-1&client_secret=app-secret&grant_type=client_credentials"
            b"&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")
    issued = call("POST", config["token_endpoint"], raw=form, context=context,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert issued.status == 200 and issued.json["token_type"] == "Bearer"
    unknown = call("GET", f"{ewsim.https_base_url}/other/v2.0/.well-known/openid-configuration",
                   context=context)
    assert unknown.status == 400 and "AADSTS90002" in unknown.json["error_description"]


def test_certificate_credentials_are_checked_against_the_registered_certificate(ewsim):
    import base64
    import datetime as dt
    import time

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app-1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    ewsim.control.add_app("app-1", "", tenant="tenant-1",
                          certificate=cert.public_bytes(serialization.Encoding.PEM).decode())

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def assertion(signing_key: rsa.RSAPrivateKey) -> str:
        head = b64(json.dumps({"alg": "PS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"iss": "app-1", "sub": "app-1", "exp": time.time() + 600,
                               "aud": "token endpoint"}).encode())
        sig = signing_key.sign(f"{head}.{body}".encode(),
                               padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                               hashes.SHA256())
        return f"{head}.{body}.{b64(sig)}"

    def ask(jwt: str):
        form = ("client_id=app-1&grant_type=client_credentials&scope=x&client_assertion_type="
                "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                f"&client_assertion={jwt}").encode()
        return call("POST", f"{ewsim.base_url}/tenant-1/oauth2/v2.0/token", raw=form,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert ask(assertion(key)).status == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refused = ask(assertion(other))
    assert refused.status == 401 and "AADSTS700027" in refused.json["error_description"]
