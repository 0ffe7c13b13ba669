"""Sign in with Hugging Face: who may do what, enforced by the one guard, with an injected ``gr.OAuthProfile``.

The handlers are called as Gradio calls them (a request, then the signed-in profile or None); a decision made by a
signed-in reviewer is recorded in the real label store under the Hugging Face user name."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import gradio as gr
import pytest
from conftest import EXAMPLES, ROOT
from test_app import free_port

from labeling.review import Review
from settings import Settings
from studio.guard import Guard
from studio.review import autolabel_handlers, decision_handlers

FILTERS = ["unreviewed", "all", "all", False, "key"]


@pytest.fixture(scope="module")
def slot(tmp_path_factory):
    from classifier.serving import ModelSlot

    return ModelSlot(None, cache_dir=tmp_path_factory.mktemp("tflite"))  # the default model


def profile(user, *orgs):
    """A signed-in profile as Gradio injects it (the userinfo of Hugging Face's OpenID sign-in)."""
    return gr.OAuthProfile({"name": user.title(), "preferred_username": user, "profile": f"https://hf.co/{user}",
                            "picture": "", "orgs": [{"preferred_username": o, "name": o} for o in orgs]})


@pytest.fixture
def signed(tmp_path, slot):
    """A Review over three photos, the guard's settings as a Space with hf_oauth, a reviewers' list and admins."""
    folder = tmp_path / "data" / "datasets" / "pets"
    folder.mkdir(parents=True)
    for c in ("cat", "dog", "horse"):
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / f"{c}.jpg")
    settings = Settings(data_dir=tmp_path / "data", data_roots=(tmp_path / "data" / "datasets",), sign_in=True,
                        reviewers=("alice",), admin_users=("zoo-keepers",))
    review = Review(settings, slot)
    review.import_folder(None, folder, "setup")
    return settings, review, Guard(settings)


def test_a_signed_in_reviewers_decisions_carry_their_hugging_face_name(signed):
    settings, review, guard = signed
    on = decision_handlers(review, guard)
    request = gr.Request(headers={"accept-language": "en"})
    alice = profile("alice")
    *_, session = on.start(request, alice, "typed name is ignored", "", *FILTERS, None)
    assert session["reviewer"] == "alice"
    on.decide("dog")(request, alice, session, "", *FILTERS)
    rows = review.store.query("SELECT author, label FROM events WHERE source = 'human'")
    assert rows == [{"author": "alice", "label": "dog"}]
    # alice signs out and carol (an admin) signs in on the same page: alice's queue is not carol's to decide in
    with pytest.raises(gr.Error, match="press Start first"):
        on.decide("cat")(request, profile("carol", "zoo-keepers"), session, "", *FILTERS)
    assert len(review.store.query("SELECT 1 FROM events WHERE source = 'human'")) == 1


@pytest.mark.parametrize("who", [None, profile("bob")], ids=["not signed in", "not a reviewer"])
def test_label_decisions_need_a_signed_in_reviewer(signed, who):
    settings, review, guard = signed
    on = decision_handlers(review, guard)
    request = gr.Request(headers={"accept-language": "en"})
    with pytest.raises(gr.Error, match="signed in with Hugging Face as a reviewer"):
        on.start(request, who, "bob", "", *FILTERS, None)
    # refused as the request joins the queue too, before it takes a place there
    door = guard.door(["session", "pw"], "pw", "do_labels", kind="label")
    marks = door(request, who, None, "")
    assert not marks[1]["is_valid"] and "REVIEWERS" in marks[1]["message"]
    assert all(m["is_valid"] for m in door(request, profile("alice"), None, ""))
    assert review.store.query("SELECT count(*) AS n FROM events WHERE source = 'human'") == [{"n": 0}]


def test_admin_actions_are_for_the_admins_and_an_organisations_members(signed):
    settings, review, guard = signed
    on = autolabel_handlers(review, guard, settings)
    request = gr.Request(headers={"accept-language": "en"})
    for who in (None, profile("alice"), profile("bob", "other-org")):  # a reviewer is no admin
        with pytest.raises(gr.Error, match="for the admins"):
            on.export(request, who, "")
        assert not guard.door(["pw"], "pw", "do_export")(request, who, "")["is_valid"]
    files = on.export(request, profile("carol", "zoo-keepers"), "")  # a member of the admins' organisation
    assert any(f.endswith(".json") for f in files)
    assert guard.door(["pw"], "pw", "do_export")(request, profile("zoo-keepers"), "")["is_valid"]
    # an admin may also decide labels, though not on the reviewers' list
    *_, session = decision_handlers(review, guard).start(request, profile("carol", "zoo-keepers"), "", "",
                                                         *FILTERS, None)
    assert session["reviewer"] == "carol"


def test_the_password_opens_both_and_without_sign_in_the_name_box_stays(tmp_path):
    locked = Guard(Settings(data_dir=tmp_path, sign_in=True, admin_password="s3cret", admin_users=("x",)))
    assert locked.allowed("s3cret", None, "label") and locked.allowed("s3cret", None, "admin")
    assert not locked.allowed("wrong", profile("bob"), "admin")
    plain = Guard(Settings(data_dir=tmp_path))  # self-hosting as before: open, names typed
    assert plain.allowed(None, None, "label") and plain.allowed(None, None, "admin")
    assert plain.reviewer("  Ann  Lee ") == "Ann Lee" and plain.notice() == "access_open"
    assert Guard(Settings(data_dir=tmp_path, sign_in=True)).notice() == "access_sign_in_open"
    assert Settings.from_env({"OAUTH_CLIENT_ID": "abc", "REVIEWERS": "alice, bob", "ADMIN_USERS": "zoo"}) == \
        Settings(sign_in=True, reviewers=("alice", "bob"), admin_users=("zoo",), data_roots=(Settings().data_dir
                                                                                             / "datasets",),
                 model_cache=Settings().data_dir / "tflite")


def test_the_review_tab_offers_hugging_face_sign_in_instead_of_a_name(signed, monkeypatch):
    settings, review, guard = signed
    import gradio.oauth

    from studio import review as review_tab

    # what a Space with hf_oauth: true gives the app (Gradio reads it at import); no network until someone signs in
    monkeypatch.setattr(gradio.oauth, "get_space", lambda: "owner/animals-studio")
    for name, value in (("OAUTH_CLIENT_ID", "id"), ("OAUTH_CLIENT_SECRET", "secret"),
                        ("OAUTH_SCOPES", "openid profile"), ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(gradio.oauth, name, value)
    with gr.Blocks() as demo:
        review_tab.build(settings, review.slot, guard)
    assert demo.expects_oauth and "/login/huggingface" in {getattr(r, "path", None) for r in demo.app.routes}
    names = [b for b in demo.blocks.values() if isinstance(b, gr.Textbox) and b.max_length]
    assert names and not any(b.visible for b in names)  # the name box is hidden


SPACE = {"SYSTEM": "spaces", "SPACE_ID": "owner/animals-studio", "OAUTH_CLIENT_ID": "id"}  # a Space with hf_oauth


@pytest.mark.parametrize("env,refused,banner", [
    ({"HF_SIGN_IN": "1"}, True, True),  # Gradio's local mock: anyone is this machine's user, the cookie forgeable
    ({"OAUTH_CLIENT_ID": "id", "OAUTH_CLIENT_SECRET": "s"}, True, True),  # off a Space the mock all the same
    ({**SPACE}, True, True),  # a Space without the secret: the cookie signed with a public constant
    ({"HF_SIGN_IN": "1", "SIGN_IN_LOCAL_TESTING": "1"}, False, True),  # wanted, and said on every page
    ({**SPACE, "OAUTH_CLIENT_SECRET": "s"}, False, False),  # Hugging Face's own sign-in
    ({"SIGN_IN_LOCAL_TESTING": "1"}, False, False),  # no sign-in: nothing to say
], ids=["HF_SIGN_IN", "secret off a Space", "Space without secret", "local testing", "Space", "no sign-in"])
def test_a_sign_in_anyone_could_forge_needs_the_local_testing_setting(env, refused, banner):
    settings = Settings.from_env(env)
    why = settings.sign_in_refusal()
    assert bool(why) == refused and settings.sign_in_test == banner
    if refused:
        assert "OAUTH_CLIENT_SECRET" in str(why) and "SIGN_IN_LOCAL_TESTING=1" in str(why)


def start(tmp_path, code: str, **env):
    """Start the app (``code``, run by Python in the repository) with ``env`` and none of a Space's variables."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OAUTH_") and k not in ("SYSTEM", "SPACE_ID")}
    log = open(tmp_path / "app.log", "w")  # what it says, stdout and stderr
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**clean, "PORT": str(port), "DATA_DIR": str(tmp_path / "data"), **env})
    return proc, f"http://127.0.0.1:{port}/"


APP = "import runpy; runpy.run_path('app.py', run_name='__main__')"


def test_the_app_refuses_to_start_with_a_sign_in_anyone_could_forge(tmp_path):
    proc, _ = start(tmp_path, APP, HF_SIGN_IN="1")
    proc.wait(300)
    err = (tmp_path / "app.log").read_text()
    assert proc.returncode != 0 and "Not started" in err and "SIGN_IN_LOCAL_TESTING=1" in err, err[-2000:]
    assert "Traceback" not in err and not (tmp_path / "data").exists()  # said why, and did nothing


def test_with_local_testing_on_every_page_says_sign_in_is_not_safe_in_public(tmp_path):
    # Gradio's local mock asks huggingface.co who this machine's token belongs to: here, a fixed user (no network)
    code = ("import gradio.oauth as o; o._get_mocked_oauth_info = lambda: {'access_token': 'mock', 'userinfo': "
            "{'preferred_username': 'local-tester', 'name': 'Local', 'profile': '', 'picture': ''}}; " + APP)
    proc, url = start(tmp_path, code, HF_SIGN_IN="1", SIGN_IN_LOCAL_TESTING="1")
    try:
        for _ in range(240):
            try:
                config = json.loads(urllib.request.urlopen(url + "config", timeout=2).read())
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
                time.sleep(0.5)
        banner = [c for c in config["components"] if c.get("props", {}).get("elem_id") == "sign-in-test"]
        assert banner and "sign_in_local_test" in json.dumps(banner[0]["props"]["value"])
        assert banner[0]["props"].get("visible", True) is not False
    finally:
        proc.terminate()
        proc.wait(30)
