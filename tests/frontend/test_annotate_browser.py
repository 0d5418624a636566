"""The annotation page in a real browser against the real backend: sign in, fix a word, submit, next.

Chromium is Debian's (`apt-get install -y chromium`), driven by Playwright's Python package; no
browser is ever downloaded. Every test signs in through the login form, so the session cookie,
the CSRF token and the API calls are exactly what an annotator's browser sends.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from annotator.models import Assignment, Correction, Project, Task
from reward.words import response_words
from tests.annotator.factories import AnnotatorFactory, DetectionFactory, ProjectFactory, TaskFactory

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # reported by the `browser` fixture, with what to install
    sync_playwright = None

PASSWORD = "pw-for-tests"
CAPTION = "two red circles left of a blue square"
# The detector suspects "red" a little and "blue" a lot; the annotator fixes "blue".
P_BAD = {"red": 0.6, "blue": 0.9}
# How long Playwright waits for the page before an assertion fails: slow shared CI runners included.
PAGE_TIMEOUT_MS = 15_000

pytestmark = pytest.mark.django_db(transaction=True)


def _missing(what: str) -> NoReturn:
    """On CI a missing browser is a broken runner, not a reason to pass; locally it is a skip that says why."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(what, pytrace=False)
    pytest.skip(what)


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    if sync_playwright is None:
        _missing("the browser tests need Playwright: pip install -e '.[test]' (never `playwright install`)")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        _missing("the browser tests need Debian's Chromium: apt-get install -y chromium")
    # Playwright's sync API keeps an asyncio event loop running in this thread, and Django then refuses
    # ORM calls from it (SynchronousOnlyOperation) although they are ordinary blocking calls here: the
    # loop only drives the browser. Scoped to these tests by monkeypatch.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()
        # While the loop runs, Django keeps this thread's connections apart from the ones it sees once the
        # loop has stopped; closed now, or the one the test used stays open and the test database cannot
        # be dropped at the end of the run.
        connections.close_all()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}") or dialog.dismiss())
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def annotator() -> AbstractBaseUser:
    return AnnotatorFactory()


@pytest.fixture
def project(annotator: AbstractBaseUser) -> Project:
    # Tokens arm only: the page must show TLDR's highlights.
    return ProjectFactory(members=[annotator], arm_weight_binary=0, arm_weight_none=0)


def _task_with_highlights(project: Project, text: str = CAPTION, priority: int = 0) -> Task:
    """A ready task whose current detection scores every word as TLDR would (no model is run)."""
    task = TaskFactory(project=project, caption__text=text, priority=priority)
    words = [
        {"text": word, "start": start, "end": end, "p_bad": P_BAD.get(word, 0.05)}
        for word, start, end in response_words(text)
    ]
    DetectionFactory(caption=task.caption, words=words)
    return task


def _sign_in_and_annotate(page: Page, live_server: LiveServer, annotator: AbstractBaseUser, project: Project) -> None:
    page.goto(f"{live_server.url}/projects/{project.pk}/annotate/")
    # Not signed in: the page sends the annotator to the real login form and back.
    expect(page.locator("#id_username")).to_be_visible()
    page.fill("#id_username", annotator.username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.pk}/annotate/")


def _words(page: Page) -> Locator:
    return page.get_by_role("listbox", name="Caption words")


def _status_task(page: Page) -> Locator:
    return page.locator(".ann-status__task")


def test_annotator_fixes_a_suspect_word_with_the_keyboard_and_gets_the_next_task(
    page: Page, live_server: LiveServer, annotator: AbstractBaseUser, project: Project
):
    first = _task_with_highlights(project)
    second = _task_with_highlights(project, text="a green triangle above one red circle", priority=1)
    started_ms = time.time() * 1000

    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {first.pk}")
    expect(page.locator(".ann-compare__text--original")).to_have_text(CAPTION)
    suspects = page.locator(".ann-word.is-suspect")
    expect(suspects).to_have_text(["red", "blue"])
    image = page.locator(".ann-image__img")
    expect(image).to_have_attribute("src", f"/api/images/{first.caption.image_id}/file/")
    page.wait_for_function("() => document.querySelector('.ann-image__img').naturalWidth > 0")

    # The first suspect is selected and the caption has the focus; j moves to the next suspect.
    expect(_words(page)).to_be_focused()
    expect(page.locator(".ann-word.is-selected")).to_have_text("red")
    page.wait_for_timeout(300)  # reading time, so active time is measurably above zero
    page.keyboard.press("j")
    expect(page.locator(".ann-word.is-selected")).to_have_text("blue")
    page.keyboard.press("Enter")
    editor = page.locator("input.ann-word-input")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("blue")
    page.keyboard.type("green")  # the editor opens with the word selected: typing replaces it
    page.keyboard.press("Enter")
    expect(editor).to_have_count(0)
    expect(page.locator(".ann-word.is-changed")).to_have_text(["green"])
    expect(page.locator(".ann-compare__text").first).to_have_text("two red circles left of a green square")
    page.wait_for_timeout(300)
    page.keyboard.press("Control+Enter")

    # The next task replaces the first one on the page.
    expect(_status_task(page)).to_have_text(f"Task {second.pk}")
    expect(page.locator(".ann-compare__text--original")).to_have_text("a green triangle above one red circle")
    expect(page.locator(".ann-status__done")).to_have_text("1 done")
    expect(image).to_have_attribute("src", f"/api/images/{second.caption.image_id}/file/")
    finished_ms = time.time() * 1000

    correction = Correction.objects.get()
    assert correction.task_id == first.pk and correction.annotator_id == annotator.pk
    assert correction.corrected_text == "two red circles left of a green square"
    assert correction.original_text == CAPTION
    assert [(word["text"], word["label"]) for word in correction.word_labels] == [
        ("two", "good"),
        ("red", "good"),
        ("circles", "good"),
        ("left", "good"),
        ("of", "good"),
        ("a", "good"),
        ("blue", "bad"),
        ("square", "good"),
    ]
    assert correction.insertions == []
    assert correction.arm == "tokens"
    assert correction.client_submission_id == correction.assignment.client_submission_id
    assert correction.assignment.status == Assignment.Status.SUBMITTED

    types = [event["type"] for event in correction.events]
    assert types[0] == "shown" and types[-1] == "submit", types
    assert {"first_interaction", "edit"} <= set(types), types
    edit = next(event for event in correction.events if event["type"] == "edit")
    assert edit["data"] == {"index": 6, "from": "blue", "to": "green"}
    assert all(started_ms - 1000 <= event["t_ms"] <= finished_ms + 1000 for event in correction.events)
    assert [event["t_ms"] for event in correction.events] == sorted(event["t_ms"] for event in correction.events)
    # At least the two pauses above; at most the whole test's wall time.
    assert 0.6 <= correction.active_seconds <= (finished_ms - started_ms) / 1000
    assert correction.served_at <= correction.submitted_at <= timezone.now()

    # The second task is leased to the annotator now, in the project's only arm.
    second_lease = Assignment.objects.get(task=second)
    assert (second_lease.annotator_id, second_lease.status, second_lease.arm) == (annotator.pk, "leased", "tokens")


def test_a_reload_resumes_the_same_task_with_the_edit_kept(
    page: Page, live_server: LiveServer, annotator: AbstractBaseUser, project: Project
):
    first = _task_with_highlights(project)
    _task_with_highlights(project, text="a green triangle", priority=1)

    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {first.pk}")
    page.keyboard.press("d")  # deletes the selected suspect, "red"
    expect(page.locator(".ann-compare__text").first).to_have_text("two circles left of a blue square")

    page.reload()
    expect(_status_task(page)).to_have_text(f"Task {first.pk}")
    expect(page.locator(".ann-compare__text").first).to_have_text("two circles left of a blue square")
    expect(page.locator(".ann-compare__text--original")).to_have_text(CAPTION)
    # One lease, not a second task taken by the reload.
    assert list(Assignment.objects.values_list("task_id", flat=True)) == [first.pk]


def test_a_caption_with_html_is_shown_as_text(page: Page, live_server: LiveServer, annotator: AbstractBaseUser):
    project = ProjectFactory(members=[annotator], name="<i>cats</i> & dogs", arm_weight_binary=0, arm_weight_none=0)
    text = "a cat <img src=x onerror=alert(1)> on a <b>mat</b>"
    task = TaskFactory(project=project, caption__text=text)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))

    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")
    expect(page.locator(".ann-compare__text--original")).to_have_text(text)
    expect(page.locator(".site-header__crumb")).to_have_text("<i>cats</i> & dogs")
    expect(page.locator(".ann-status__project")).to_have_text("<i>cats</i> & dogs")
    # The task's own image only: no element came out of the caption or the project's name.
    expect(page.locator("img")).to_have_count(1)
    expect(page.locator("#content b, #content i, header i")).to_have_count(0)
    expect(page.locator(".ann-word").filter(has_text="onerror")).to_have_count(1)
    page.wait_for_function("() => document.querySelector('.ann-image__img').complete")
    assert dialogs == []


def test_a_submit_after_the_lease_ended_keeps_the_text(
    page: Page, live_server: LiveServer, annotator: AbstractBaseUser, project: Project
):
    task = _task_with_highlights(project)

    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")
    Assignment.objects.filter(task=task).update(expires_at=timezone.now())
    page.keyboard.press("Enter")
    page.keyboard.type("blue")
    page.keyboard.press("Control+Enter")  # keeps the edit and submits it

    kept = "two blue circles left of a blue square"
    expect(page.get_by_role("heading", name="Your lease on this task ended")).to_be_visible()
    expect(page.get_by_label("Your text (kept, copy it if you need it)")).to_have_value(kept)
    assert not Correction.objects.exists()
    assert Assignment.objects.get(task=task).draft == kept

    # Asking again gives the caption back (nobody else took it) with the kept text as the draft.
    expect(page.get_by_role("button", name="Get a new task")).to_be_focused()
    page.keyboard.press("Enter")
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")
    expect(page.locator(".ann-compare__text").first).to_have_text(kept)


def test_signing_in_again_in_another_tab_does_not_break_the_submit(
    page: Page, live_server: LiveServer, annotator: AbstractBaseUser, project: Project
):
    """A new sign-in rotates the CSRF token; the open page must send the current one, not the one it was served."""
    task = _task_with_highlights(project)
    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")

    other_tab = page.context.new_page()
    other_tab.goto(f"{live_server.url}/accounts/login/")
    other_tab.fill("#id_username", annotator.username)
    other_tab.fill("#id_password", PASSWORD)
    other_tab.keyboard.press("Enter")
    other_tab.wait_for_url(f"{live_server.url}/")
    other_tab.close()

    page.bring_to_front()
    page.keyboard.press("a")  # accept the caption as it is
    expect(page.get_by_role("heading", name="No tasks ready — check back soon")).to_be_visible()
    assert Correction.objects.get().corrected_text == CAPTION


@pytest.mark.parametrize(
    ("keys", "typed", "kept"),
    [
        (["j", "Enter"], "green", "two red circles left of a green square"),
        (["r", "Control+a"], "three green squares", "three green squares"),
    ],
    ids=["word-being-typed", "rewrite-in-progress"],
)
def test_a_lease_lost_while_typing_keeps_what_was_typed(
    page: Page,
    live_server: LiveServer,
    annotator: AbstractBaseUser,
    project: Project,
    keys: list[str],
    typed: str,
    kept: str,
):
    task = _task_with_highlights(project)
    _sign_in_and_annotate(page, live_server, annotator, project)
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.type(typed)

    Assignment.objects.filter(task=task).update(expires_at=timezone.now())
    # Coming back to the tab renews the lease at once (as the 30 s heartbeat would): the server says it is gone.
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")

    expect(page.get_by_role("heading", name="Your lease on this task ended")).to_be_visible()
    expect(page.get_by_label("Your text (kept, copy it if you need it)")).to_have_value(kept)
    page.keyboard.press("Enter")  # "Get a new task": the caption is still free, so it comes back with the text
    expect(_status_task(page)).to_have_text(f"Task {task.pk}")
    expect(page.locator(".ann-compare__text").first).to_have_text(kept)
