import contextlib
import hashlib
import subprocess
import sys
import textwrap
import time

import pytest

from keras_ae import cards, weights
from http_server import serve

PAYLOAD = bytes(range(256)) * 400
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


def fake_card(name="tiny", file_name="model.weights.h5", sha=PAYLOAD_SHA256, url=None):
    return cards.Card(name=name, model=cards.KerasClass(class_name="Autoencoder"),
                      weights=cards.Weights(file=file_name, sha256=sha, size=len(PAYLOAD), url=url))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_AE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_AE_MIRROR", raising=False)
    monkeypatch.setattr(weights, "ZOO_DIR", tmp_path / "zoo")
    return tmp_path / "cache"


def files_in(folder):
    return sorted(path.name for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def test_a_zoo_entry_without_a_mirror_downloads_from_its_card_url(cache):
    with serve(PAYLOAD) as (url, server):
        path = weights.resolve(fake_card(url=f"{url}/good/tiny/model.weights.h5"))
    assert path == cache / "tiny" / "model.weights.h5" and path.read_bytes() == PAYLOAD
    assert server.requests == ["/good/tiny/model.weights.h5"]


def test_good_download_lands_verified_and_complete(cache):
    with serve(PAYLOAD) as (url, server):
        path = weights.resolve(fake_card(), mirror=f"{url}/good")
    assert path == cache / "tiny" / "model.weights.h5" and path.read_bytes() == PAYLOAD
    assert files_in(cache) == ["model.weights.h5"]
    assert server.requests == ["/good/tiny/model.weights.h5"]


@pytest.mark.parametrize("mode, complaint", [
    ("truncated", "sha256 is"),
    ("corrupt", "sha256 is"),
    ("404", "HTTP 404"),
    ("drop", "bytes"),
])
def test_bad_responses_leave_nothing_and_the_next_good_call_works(cache, mode, complaint):
    with serve(PAYLOAD) as (url, server):
        with pytest.raises(weights.DownloadError, match=complaint) as error:
            weights.download(f"{url}/{mode}/x", cache / "tiny" / "model.weights.h5", PAYLOAD_SHA256, retries=1)
        assert f"{url}/{mode}/x" in str(error.value)  # the error names the URL
        assert files_in(cache) == []
        assert len(server.requests) == (2 if mode == "drop" else 1)  # a drop is retried; a 404 or wrong bytes would only repeat
        weights.download(f"{url}/good/x", cache / "tiny" / "model.weights.h5", PAYLOAD_SHA256)
    assert (cache / "tiny" / "model.weights.h5").read_bytes() == PAYLOAD


def test_server_error_is_retried_until_it_succeeds(cache):
    with serve(PAYLOAD) as (url, server):
        path = weights.download(f"{url}/flaky/x", cache / "f.weights.h5", PAYLOAD_SHA256, retries=2)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_stalled_server_times_out(cache):
    with serve(PAYLOAD) as (url, _):
        with pytest.raises(weights.DownloadError, match="timed out"):
            weights.download(f"{url}/stall/x", cache / "s.weights.h5", PAYLOAD_SHA256, timeout=0.5, retries=0)
    assert files_in(cache) == []


def test_two_processes_downloading_at_once_both_get_a_whole_file(cache, tmp_path):
    with serve(PAYLOAD) as (url, server):
        script = textwrap.dedent(f"""
            from keras_ae import weights
            weights.download("{url}/slow/x", r"{cache / 'same.weights.h5'}", "{PAYLOAD_SHA256}")
        """)
        processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
        seen = set()  # sizes of the destination file while both download: only ever absent or whole
        while any(process.poll() is None for process in processes):
            with contextlib.suppress(FileNotFoundError):
                seen.add((cache / "same.weights.h5").stat().st_size)
            time.sleep(0.01)
        assert [process.wait(timeout=120) for process in processes] == [0, 0]
    assert server.most_in_flight == 2  # the two downloads overlapped (each takes about 2 s on the slow path)
    assert len(server.requests) == 2, server.requests  # neither download had to be retried (e.g. after a clash of temporaries)
    assert seen <= {len(PAYLOAD)}, seen
    assert files_in(cache) == ["same.weights.h5"]
    assert (cache / "same.weights.h5").read_bytes() == PAYLOAD


def test_resolution_order_cache_then_bundled_then_url(cache):
    bundled = weights.ZOO_DIR / "tiny" / "model.weights.h5"
    bundled.parent.mkdir(parents=True)
    bundled.write_bytes(PAYLOAD)
    assert weights.resolve(fake_card(url="http://127.0.0.1:9/never")) == bundled
    cached = cache / "tiny" / "model.weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert weights.resolve(fake_card()) == cached


def test_a_mismatching_file_is_refused_with_both_hashes(cache):
    cached = cache / "tiny" / "model.weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD + b"x")
    with pytest.raises(weights.ChecksumError) as error:
        weights.resolve(fake_card())
    assert PAYLOAD_SHA256 in str(error.value) and hashlib.sha256(PAYLOAD + b"x").hexdigest() in str(error.value)


def test_no_source_says_where_it_looked(cache):
    with pytest.raises(FileNotFoundError, match="not in the cache"):
        weights.resolve(fake_card())


@pytest.mark.parametrize("file_name", ["../evil.weights.h5", "/etc/passwd", "a/b.weights.h5", "..", ""])
def test_weight_file_names_cannot_escape(cache, file_name):
    with pytest.raises(ValueError, match="plain file name"):
        weights.resolve(fake_card(file_name=file_name))
