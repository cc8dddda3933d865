from __future__ import annotations

from .conftest import api_session


def test_a_wrong_api_key_is_401_and_21_bad_logins_block_the_address(raynetsim, api):
    with api_session(raynetsim, api_key="wrong") as bad:
        answers = [bad.get(raynetsim.url + "person/") for _ in range(21)]
        assert [a.status_code for a in answers] == [401] * 21
        assert answers[0].headers["X-Ratelimit-Remaining"] == "24000"   # spends nothing
        assert bad.get(raynetsim.url + "person/").json()["message"] == \
            "TooManyBadLoginsException"
    blocked = api.get(raynetsim.url + "person/")
    assert blocked.status_code == 403            # the right key from there is blocked too
    assert list(raynetsim.control.call("GET", "blocked")) == ["127.0.0.1"]
    raynetsim.control.advance_clock(60 * 60 + 1)
    assert api.get(raynetsim.url + "person/").status_code == 200


def test_an_unknown_instance_is_refused(raynetsim):
    with api_session(raynetsim, instance="nope") as session:
        answer = session.get(raynetsim.url + "person/")
    assert answer.status_code == 401
    assert "nope" in answer.json()["translatedMessage"]


def test_every_answer_counts_on_the_daily_budget_until_429(raynetsim, api):
    raynetsim.control.budget(raynetsim.instance, daily_limit=3)
    first = api.get(raynetsim.url + "person/")
    assert first.headers["X-Ratelimit-Limit"] == "3"
    assert first.headers["X-Ratelimit-Remaining"] == "2"
    api.get(raynetsim.url + "person/")
    api.get(raynetsim.url + "person/")
    refused = api.get(raynetsim.url + "person/")
    assert refused.status_code == 429
    assert refused.json()["type"] == "RequestLimitReached"
    assert refused.headers["X-Ratelimit-Remaining"] == "0"
    reset_at = int(refused.headers["X-Ratelimit-Reset"])
    raynetsim.control.advance_clock(reset_at - int(__import__("time").time()) + 1)
    assert api.get(raynetsim.url + "person/").status_code == 200


def test_faults_answer_the_next_requests_or_a_path(raynetsim, api):
    raynetsim.control.fault("http_503", count=1, retry_after=2)
    answer = api.get(raynetsim.url + "person/")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "2")
    raynetsim.control.fault("http_500", path=r"PUT /api/v2/company/", count=2)
    assert api.get(raynetsim.url + "person/").status_code == 200
    assert api.put(raynetsim.url + "company/", json={}).status_code == 500
    raynetsim.control.fault("http_429")
    assert api.get(raynetsim.url + "person/").json()["type"] == "RequestLimitReached"


def test_a_reset_connection_and_a_delay(raynetsim, api):
    import time

    import pytest
    import requests

    raynetsim.control.fault("connection_reset")
    with pytest.raises(requests.ConnectionError):
        api.get(raynetsim.url + "person/")
    raynetsim.control.fault("delay", delay_ms=300)
    started = time.monotonic()
    assert api.get(raynetsim.url + "person/").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_fault_until_cleared_and_the_latency_setting(raynetsim, api):
    import time

    raynetsim.control.fault("http_500", path="GET /api/v2/company/", count=-1)
    assert [api.get(raynetsim.url + "company/").status_code for _ in range(3)] == [500] * 3
    raynetsim.control.clear_faults()
    assert api.get(raynetsim.url + "company/").status_code == 200
    raynetsim.control.settings(latency_ms=200)
    started = time.monotonic()
    api.get(raynetsim.url + "company/")
    assert time.monotonic() - started >= 0.2
