"""Fair shares under floods (studio.fair): one session's joins beyond its share are refused at once, with HTTP 429
and "too many requests" in the viewer's language, while another session's classify answers; direct (/run/)
requests are capped in flight the same way; on a Space a client is the address its proxy saw."""

import asyncio
import os

import httpx
import pytest
from conftest import EXAMPLES
from gradio_client import Client, handle_file
from test_review_app import launch

from studio.fair import MAX_PENDING, MAX_RUNNING, FairShare, client_of


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair")
    proc, url, _ = launch(tmp)
    yield url, tmp / "app.log"
    proc.terminate()
    proc.wait(30)


ESTIMATE = [None, None, 0]  # /audit_estimate's values: a password (none is set here), no data set, a target


async def burst(url: str, fn_index: int, n: int) -> list[httpx.Response]:
    """``n`` joins of one event under one session, all sent at once."""
    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(*(
            client.post(url + "gradio_api/queue/join",
                        json={"data": ESTIMATE, "fn_index": fn_index, "session_hash": "flood12345"})
            for _ in range(n)))


def test_one_session_beyond_its_share_gets_429_while_another_session_classifies(app):
    url, log = app
    config = httpx.get(url + "config").json()
    estimate = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "audit_estimate")
    answers = asyncio.run(burst(url, estimate, 40))  # never reading its stream: its events stay pending
    assert sorted(r.status_code for r in answers) == [200] * MAX_PENDING + [429] * (40 - MAX_PENDING)
    refused = next(r for r in answers if r.status_code == 429)
    assert "Too many requests" in refused.json()["detail"] and refused.headers["retry-after"]
    chinese = httpx.post(url + "gradio_api/queue/join", headers={"Accept-Language": "zh-CN"},
                         json={"data": ESTIMATE, "fn_index": estimate, "session_hash": "flood12345"})
    assert chinese.status_code == 429 and "请求太多" in chinese.json()["detail"]
    # the REST route (/call/) is the same share: the same session, the same refusal
    call = httpx.post(url + "gradio_api/call/audit_estimate", json={"data": ESTIMATE, "session_hash": "flood12345"})
    assert call.status_code == 429
    # and REST calls with no session at all are one client (their address): Gradio files each under its own id
    async def rest_burst():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(url + "gradio_api/call/audit_estimate", json={"data": ESTIMATE})
                                          for _ in range(MAX_PENDING + 4)))
    assert sorted(r.status_code for r in asyncio.run(rest_burst())) == [200] * MAX_PENDING + [429] * 4
    # another session is not held back
    answer = Client(url, verbose=False).predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify")
    assert answer["label"] == "cat 猫"
    # logged, not flooded: at the 1st, 2nd, 4th... refusal of a client
    assert 1 <= log.read_text().count("refused: too many requests from one client") <= 10


def test_direct_requests_of_one_client_are_capped_in_flight():
    async def scenario():
        release = asyncio.Event()

        async def slow(scope, receive, send):  # an app whose direct requests answer once released
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        transport = httpx.ASGITransport(app=FairShare(slow))
        async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
            def post(session):
                return client.post("/gradio_api/run/predict",
                                   json={"data": [], "fn_index": 1, "session_hash": session})
            held = [asyncio.create_task(post("page1")) for _ in range(MAX_RUNNING)]
            await asyncio.sleep(0.2)  # all in flight
            over = await post("page1")
            other = asyncio.create_task(post("page2"))
            await asyncio.sleep(0.1)
            release.set()
            return over, await asyncio.gather(*held), await other, await post("page1")

    over, held, other, later = asyncio.run(scenario())
    assert over.status_code == 429 and "Too many requests" in over.json()["detail"]
    assert [r.status_code for r in held] == [200] * MAX_RUNNING and other.status_code == 200
    assert later.status_code == 200  # once answered, they no longer count


def test_on_a_space_a_client_is_the_address_the_proxy_saw():
    def scope(forwarded):
        return {"client": ("10.16.3.80", 5000), "headers": [(b"x-forwarded-for", forwarded.encode())]}

    # what a caller writes itself comes first and is not read; its sessions are one client
    assert client_of(scope("6.6.6.6, 203.0.113.7"), "a", True) == client_of(scope("203.0.113.7"), "b", True)
    assert client_of(scope("203.0.113.7"), "a", True) == "address 203.0.113.7"
    # off a Space anyone could write the header: the session is the client, else the address it came from
    assert client_of(scope("203.0.113.7"), "a", False) == "session a"
    assert client_of(scope("203.0.113.7"), None, False) == "address 10.16.3.80"


def test_the_last_places_of_a_full_queue_are_kept_for_classify():
    """Clients that make up a session per join (anyone can, off a Space) fill a queue only up to its last
    RESERVE places; a classify still joins there, from the page (fn_index) or the REST route (/call/classify)."""
    from types import SimpleNamespace

    from studio.fair import RESERVE

    studio = SimpleNamespace(fns={1: SimpleNamespace(api_name="classify"), 2: SimpleNamespace(api_name="heatmap")})

    class Queue(list):
        max_size, pending_event_ids_session = 256, {}

    async def scenario(waiting):
        studio._queue = Queue([None] * waiting)

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        transport = httpx.ASGITransport(app=FairShare(app, apps={"": studio}))
        async with httpx.AsyncClient(transport=transport, base_url="http://studio") as client:
            async def join(fn):
                return (await client.post("/gradio_api/queue/join",
                                          json={"data": [], "fn_index": fn, "session_hash": os.urandom(4).hex()})
                        ).status_code
            return await join(1), await join(2), (await client.post("/gradio_api/call/classify", json={})).status_code

    assert asyncio.run(scenario(256 - RESERVE - 1)) == (200, 200, 200)  # room: anything joins
    assert asyncio.run(scenario(256 - RESERVE)) == (200, 429, 200)  # the reserve: only classify
