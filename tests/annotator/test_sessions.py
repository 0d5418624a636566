"""The session engine: Django's database sessions, read by hand-written SQL, behave as Django's do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from annotator.sessions import SessionStore
from tests.annotator.factories import TaskFactory

pytestmark = pytest.mark.django_db


def test_a_saved_session_reads_back_with_its_data():
    store = SessionStore()
    store["annotator"] = {"id": 7, "name": "ann"}
    store.create()
    again = SessionStore(store.session_key)
    assert again["annotator"] == {"id": 7, "name": "ann"}
    assert again.session_key == store.session_key


def test_an_expired_or_unknown_session_reads_empty_and_drops_its_key():
    store = SessionStore()
    store["annotator"] = 7
    store.create()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() - timedelta(seconds=1))
    for key in (store.session_key, "no-such-session-key-0000000000000"):
        again = SessionStore(key)
        assert again.load() == {}
        assert again.session_key is None


def test_a_logged_in_browser_is_served_and_a_logged_out_one_is_not(annotator, project, client):
    TaskFactory(project=project)
    client.force_login(annotator)
    assert client.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 200
    client.logout()
    assert client.post(f"/api/projects/{project.pk}/tasks/next/").status_code == 403
