"""Finding a TPU fails with one message naming the TPU, zone and project and what to check, for
every way it fails here without a TPU: no Google API client, no credentials, no metadata server
(off Google Cloud), an unknown TPU, no permission, an API that does not answer."""

from __future__ import annotations

import threading

import pytest

from bioalbert_tf.training import distribute

tf = pytest.importorskip("tensorflow")

WHERE = "--tpu='my-tpu' (--tpu_zone=europe-west4-a, --gcp_project=my-project): cannot find the TPU"


@pytest.fixture()
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default file either
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))


def _tpu(tpu="my-tpu", zone="europe-west4-a", project="my-project", timeout_s=60.0):
    return distribute.tpu_strategy(tpu, zone, project, timeout_s)


def test_without_the_google_api_client(monkeypatch):
    from tensorflow.python.tpu.client import client

    monkeypatch.setattr(client, "_GOOGLE_API_CLIENT_INSTALLED", False)
    with pytest.raises(distribute.TPUConnectionError) as e:
        _tpu()
    assert str(e.value).startswith(WHERE)
    assert "needs the Google API client" in str(e.value)
    assert "pip install -e '.[tpu]'" in str(e.value) and "--tpu=local" in str(e.value)


def test_without_credentials(no_credentials):
    pytest.importorskip("googleapiclient", reason="the [tpu] extra is not installed")
    with pytest.raises(distribute.TPUConnectionError) as e:
        _tpu()
    assert str(e.value).startswith(WHERE)
    assert "no Google Cloud credentials" in str(e.value)
    assert "gcloud auth application-default login" in str(e.value)


def test_off_google_cloud_without_zone_and_project(no_credentials):
    """Without --tpu_zone/--gcp_project the resolver asks the GCE metadata server, which does
    not exist off Google Cloud (here: its name does not resolve)."""
    with pytest.raises(distribute.TPUConnectionError) as e:
        distribute.tpu_strategy("my-tpu", None, None, 60.0)
    message = str(e.value)
    assert message.startswith(
        "--tpu='my-tpu' (--tpu_zone=not given, --gcp_project=not given): cannot find the TPU"
    )
    assert "metadata server" in message or "credentials" in message, message


class _FakeResolver:
    """TPUClusterResolver whose lookup fails as the Cloud TPU API would."""

    error: BaseException | None = None
    block: threading.Event | None = None

    def __init__(self, tpu=None, zone=None, project=None):
        pass

    def master(self):
        if self.block is not None:
            self.block.wait(30)
        raise self.error


def _http_error(status: int):
    googleapiclient = pytest.importorskip("googleapiclient.errors")
    import httplib2

    return googleapiclient.HttpError(httplib2.Response({"status": status}), b'{"error": "x"}')


@pytest.mark.parametrize(
    "status, expected",
    [
        (
            404,
            "there is no TPU 'my-tpu' in zone europe-west4-a of project my-project: check "
            "`gcloud compute tpus tpu-vm list --zone=europe-west4-a`",
        ),
        (
            403,
            "the credentials may not read TPU 'my-tpu' (HTTP 403): check the account's TPU "
            "permissions in project my-project",
        ),
    ],
)
def test_unknown_tpu_and_no_permission(monkeypatch, status, expected):
    monkeypatch.setattr(_FakeResolver, "error", _http_error(status))
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", _FakeResolver)
    with pytest.raises(distribute.TPUConnectionError) as e:
        _tpu()
    assert str(e.value) == f"{WHERE}: {expected}"


def test_an_api_that_does_not_answer_ends_within_the_timeout(monkeypatch):
    block = threading.Event()
    monkeypatch.setattr(_FakeResolver, "block", block)
    monkeypatch.setattr(_FakeResolver, "error", RuntimeError("late"))
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", _FakeResolver)
    try:
        with pytest.raises(distribute.TPUConnectionError, match=r"did not answer within 1 s"):
            _tpu(timeout_s=1.0)
    finally:
        block.set()


def test_local_tpu_on_a_machine_without_one():
    with pytest.raises(distribute.TPUConnectionError) as e:
        distribute.tpu_strategy("local", None, None, 60.0)
    message = str(e.value)
    assert message.startswith("--tpu='local' (--tpu_zone=not given, --gcp_project=not given)")
    assert "the TPU did not start" in message and "run on the TPU VM" in message
