"""URL and hf:// presets against hostile servers on 127.0.0.1: stalls end within a deadline, downloads stop at the
size the card announces, and a preset's card is fetched afresh on each load while its weights are cached by sha256."""

import contextlib
import http.server
import json
import socket
import threading
import time
import warnings

import numpy as np
import pytest

import keras_ae
from keras_ae import cards, cli, networks, weights
from http_server import running
from hub_server import serve_hub

FLOOD_BYTES = 300 * 2**20  # as in the issue: a 300 MB stream where the card says some KB


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files` ({path: bytes}); `server.modes` ({path: mode}) makes a path misbehave:

    silent        accepts the request and never answers
    trickle       announces the whole file, then sends one byte every 0.05 s
    flood         sends FLOOD_BYTES without a Content-Length, until the client hangs up
    announced     the same with a Content-Length of FLOOD_BYTES
    """

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (the http.server API)
        server = self.server
        server.requests.append(self.path)
        body, mode = server.files.get(self.path), server.modes.get(self.path, "good")
        if body is None:
            return self.send_error(404)
        if mode == "silent":
            server.stopping.wait(timeout=30)
            return
        self.send_response(200)
        if mode != "flood":
            self.send_header("Content-Length", str(FLOOD_BYTES if mode == "announced" else len(body)))
        self.end_headers()
        if mode == "good":
            self.wfile.write(body)
            return
        chunk, chunks = (body[:1], len(body)) if mode == "trickle" else (b"\0" * 2**16, FLOOD_BYTES // 2**16)
        with contextlib.suppress(OSError):
            for _ in range(chunks):
                if server.stopping.is_set():
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
                server.sent += len(chunk)
                if mode == "trickle":
                    time.sleep(0.05)

    do_HEAD = do_GET  # noqa: N815 (the Hub's metadata request; the tests use it only "silent")


@contextlib.contextmanager
def serve(files, modes=None):
    """Yield (base URL, server) of a server for `files` ({path: bytes}), misbehaving on the paths in `modes`."""
    with running(Handler, on_stop=lambda server: server.stopping.set(), files=files, modes=modes or {}, requests=[],
                 sent=0, stopping=threading.Event()) as (url, server):
        yield url, server


class Preset:
    """A tiny preset saved in a folder: its card, its files' bytes and its weights as arrays."""

    def __init__(self, folder, seed):
        model = keras_ae.Autoencoder(*networks.dense((28, 28, 1), 4, seed=seed))
        self.card = keras_ae.save_preset(model, folder)
        self.files = {name: (folder / name).read_bytes() for name in ("card.json", "model.weights.h5")}
        self.weights = [np.asarray(value) for value in keras_ae.load(folder).get_weights()]


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    """Two tiny presets of one architecture with different weights."""
    return {name: Preset(tmp_path_factory.mktemp(name), seed) for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_AE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_AE_TIMEOUT", raising=False)
    return tmp_path / "cache"


def published(preset, card=None):
    """The files of `preset` as served under /p/; `card` replaces its card."""
    return {"/p/card.json": json.dumps(card).encode() if card else preset.files["card.json"],
            "/p/model.weights.h5": preset.files["model.weights.h5"]}


def files_in(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def assert_weights(model, preset):
    for mine, theirs in zip(model.get_weights(), preset.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), theirs)


@contextlib.contextmanager
def took_less_than(seconds):
    started = time.monotonic()
    yield
    assert time.monotonic() - started < seconds


def assert_one_line_naming(error, *parts):
    message = str(error)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def seconds_in(message):
    """The time an error says was spent: '... after 3.0 s ...'."""
    return float(message.split(" after ")[1].split(" s")[0])


# --- 2. Stalls: a time-out per connect and read, one deadline per download -------------------------------------------

def test_a_server_that_never_answers_fails_within_the_time_out_once(presets, cache):
    with serve(published(presets["a"]), {"/p/card.json": "silent"}) as (url, server):
        started = time.monotonic()
        with pytest.raises(weights.DownloadError) as error:
            keras_ae.load(f"{url}/p", timeout=0.5)
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2, elapsed
    assert_one_line_naming(error.value, f"{url}/p/card.json", "timed out", "0.5 s time-out", "KERAS_AE_TIMEOUT")
    assert 0.5 <= seconds_in(str(error.value)) < 2
    assert server.requests == ["/p/card.json"]  # a time-out is not retried
    assert files_in(cache) == []


def test_a_listener_that_never_accepts_fails_within_the_time_out_set_by_the_environment(cache, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]  # fill the accept queue, so that connecting itself hangs
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    monkeypatch.setenv("KERAS_AE_TIMEOUT", "0.5")
    try:
        with took_less_than(2), pytest.raises(weights.DownloadError) as error:
            keras_ae.load(f"http://127.0.0.1:{port}/p")
    finally:
        for connection in (*fillers, listener):
            connection.close()
    assert_one_line_naming(error.value, f"http://127.0.0.1:{port}/p/card.json", "timed out")
    assert files_in(cache) == []


def test_a_trickling_server_is_cut_off_at_the_deadline(presets, cache):
    """One byte every 0.05 s never trips the 0.3 s read time-out; the deadline of 10 time-outs ends it."""
    with serve(published(presets["a"]), {"/p/model.weights.h5": "trickle"}) as (url, server):
        started = time.monotonic()
        with pytest.raises(weights.DownloadError) as error:
            keras_ae.load(f"{url}/p", timeout=0.3)
        elapsed = time.monotonic() - started
    assert 3 <= elapsed < 4.5, elapsed
    assert_one_line_naming(error.value, f"{url}/p/model.weights.h5", "deadline of 10 time-outs of 0.3 s")
    assert 3 <= seconds_in(str(error.value)) < 4.5
    assert server.requests == ["/p/card.json", "/p/model.weights.h5"] and 20 < server.sent < 100
    assert files_in(cache) == [f"presets/{weights.url_cache_folder(f'{url}/p').name}/card.json"]  # no partial weights


def test_the_command_reports_a_stalled_server_in_one_line(presets, cache, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_AE_TIMEOUT", "0.5")
    with serve(published(presets["a"]), {"/p/card.json": "silent"}) as (url, _), took_less_than(2):
        assert cli.main(["info", f"{url}/p"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{url}/p/card.json" in error and "timed out" in error


@pytest.mark.parametrize("timeout, complaint", [
    (0, "timeout must be a positive number of seconds; got 0"),
    (-1, "timeout must be a positive number of seconds; got -1"),
    ("soon", "timeout must be a positive number of seconds; got 'soon'"),
    (None, "KERAS_AE_TIMEOUT must be a positive number of seconds; got 'nan'"),
])
def test_a_bad_time_out_is_refused_naming_where_it_came_from(cache, monkeypatch, timeout, complaint):
    monkeypatch.setenv("KERAS_AE_TIMEOUT", "nan")
    with pytest.raises(ValueError) as error:
        keras_ae.load("http://127.0.0.1:9/p", timeout=timeout)
    assert_one_line_naming(error.value, complaint)


def point_hub_at(endpoint, tmp_path, monkeypatch):
    """Point huggingface_hub at `endpoint` for the rest of the test (it reads HF_ENDPOINT etc. once, on import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


def closed_port():
    """The address of a port nothing listens on."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_hub_fails_at_once_and_a_cached_hub_preset_still_loads(presets, cache, tmp_path, monkeypatch):
    endpoint = closed_port()
    point_hub_at(endpoint, tmp_path, monkeypatch)
    with took_less_than(2), pytest.raises(weights.DownloadError) as error:  # was 23.5 s of huggingface_hub's retries
        keras_ae.load("hf://someone/autoencoders")
    assert_one_line_naming(error.value, "hf://someone/autoencoders: could not get card.json",
                           f"Hub at {endpoint} could not be reached", "not in the local Hub cache")
    with serve_hub({"someone/autoencoders": {"main": presets["a"].files}}) as (endpoint, _):
        point_hub_at(endpoint, tmp_path, monkeypatch)
        first = keras_ae.load("hf://someone/autoencoders")
    point_hub_at(closed_port(), tmp_path, monkeypatch)
    with took_less_than(2):
        again = keras_ae.load("hf://someone/autoencoders")  # the Hub is gone: huggingface_hub's cache answers
    assert_weights(first, presets["a"])
    assert_weights(again, presets["a"])


def test_a_silent_hub_fails_within_the_time_out(cache, tmp_path, monkeypatch, capsys):
    path = "/someone/autoencoders/resolve/main/card.json"
    with serve({path: b"{}"}, {path: "silent"}) as (endpoint, _):
        point_hub_at(endpoint, tmp_path, monkeypatch)
        monkeypatch.setenv("KERAS_AE_TIMEOUT", "0.5")
        with took_less_than(2):
            assert cli.main(["info", "hf://someone/autoencoders"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "hf://someone/autoencoders: could not get card.json" in error and "Timeout" in error


# --- 3. Size: a download stops at the size its card announces ---------------------------------------------------------

class PeakSize:
    """The most bytes seen in a folder's files while the block runs, sampled every 2 ms."""

    def __init__(self, folder):
        self.folder, self.peak, self.done = folder, 0, threading.Event()

    def sample(self):
        while not self.done.is_set():
            total = 0
            for path in list(self.folder.rglob("*")) if self.folder.exists() else []:
                with contextlib.suppress(OSError):
                    total += path.stat().st_size if path.is_file() else 0
            self.peak = max(self.peak, total)
            time.sleep(0.002)

    def __enter__(self):
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


@pytest.mark.parametrize("mode, complaint", [
    ("flood", "the server sent more than the {limit} bytes expected; stopped reading"),
    ("announced", f"its Content-Length is {FLOOD_BYTES} bytes, more than the {{limit}} expected"),
])
def test_weights_larger_than_the_card_says_are_refused_once_without_filling_the_cache(presets, cache, mode, complaint):
    limit = weights.size_limit(presets["a"].card["weights"]["size"])
    with serve(published(presets["a"]), {"/p/model.weights.h5": mode}) as (url, server):
        with took_less_than(3), PeakSize(cache) as peak, pytest.raises(weights.ContentError) as error:
            keras_ae.load(f"{url}/p")
    assert_one_line_naming(error.value, f"{url}/p/model.weights.h5", complaint.format(limit=limit))
    assert server.requests == ["/p/card.json", "/p/model.weights.h5"]  # never retried
    assert server.sent < 64 * 2**20  # what the sockets buffer at most, not 3 x 300 MB
    assert peak.peak <= limit + len(presets["a"].files["card.json"]), peak.peak
    assert files_in(cache) == []  # the card whose weights failed is discarded too


def test_an_endless_card_is_refused_at_a_megabyte(presets, cache):
    with serve(published(presets["a"]), {"/p/card.json": "flood"}) as (url, server):
        with took_less_than(3), PeakSize(cache) as peak, pytest.raises(weights.ContentError) as error:
            keras_ae.model_card(f"{url}/p")
    assert_one_line_naming(error.value, f"{url}/p/card.json", f"more than the {weights.CARD_MAX_BYTES} bytes expected")
    assert server.requests == ["/p/card.json"] and peak.peak <= weights.CARD_MAX_BYTES
    assert files_in(cache) == []


# --- 4. The cache: cards revalidated on each load, weights cached by content ------------------------------------------

def test_a_checksum_failure_is_not_retried_and_a_card_fixed_on_the_server_loads(presets, cache):
    card = presets["a"].card
    wrong = dict(card, weights=dict(card["weights"], sha256="0" * 64))
    with serve(published(presets["a"], wrong)) as (url, server):
        with pytest.raises(weights.ContentError) as error:
            keras_ae.load(f"{url}/p")
        assert_one_line_naming(error.value, f"{url}/p/model.weights.h5",
                               f"sha256 is {card['weights']['sha256']}, the card expects {'0' * 64}")
        assert server.requests == ["/p/card.json", "/p/model.weights.h5"]  # fetched once, not three times
        assert files_in(cache) == [] and list(cache.rglob("0" * 64)) == []  # the card whose weights failed is not kept
        server.files["/p/card.json"] = presets["a"].files["card.json"]  # fixed on the server
        assert_weights(keras_ae.load(f"{url}/p"), presets["a"])


def test_a_preset_republished_at_the_same_url_is_loaded_afresh(presets, cache):
    with serve(published(presets["a"])) as (url, server):
        assert_weights(keras_ae.load(f"{url}/p"), presets["a"])
        server.files.update(published(presets["b"]))  # republished: new card, new weights, same URL
        assert_weights(keras_ae.load(f"{url}/p"), presets["b"])
        assert server.requests == ["/p/card.json", "/p/model.weights.h5"] * 2
        server.files.update(published(presets["a"]))  # and back: the card is fetched, the weights come from the cache
        assert_weights(keras_ae.load(f"{url}/p"), presets["a"])
        assert server.requests[4:] == ["/p/card.json"]
    folder = weights.url_cache_folder(f"{url}/p")
    shas = sorted(presets[name].card["weights"]["sha256"] for name in "ab")
    assert files_in(folder) == sorted(["card.json", *(f"{sha}/model.weights.h5" for sha in shas)])
    with warnings.catch_warnings(record=True) as caught:  # the server is gone: the card cached last answers, with a warning
        warnings.simplefilter("always")
        assert_weights(keras_ae.load(f"{url}/p", timeout=1), presets["a"])
    stale = [str(warning.message) for warning in caught if issubclass(warning.category, cards.CachedCardWarning)]
    assert len(stale) == 1 and f"{url}/p/card.json" in stale[0] and str(folder / "card.json") in stale[0]


def test_a_cached_card_whose_weights_failed_is_never_used_again(presets, cache):
    card = presets["a"].card
    with serve(published(presets["a"])) as (url, server):
        keras_ae.model_card(f"{url}/p")  # the card alone is cached
        server.files["/p/card.json"] = json.dumps(dict(card, weights=dict(card["weights"], size=100))).encode()
        with pytest.raises(weights.ContentError, match=f"more than the {weights.size_limit(100)} expected"):
            keras_ae.load(f"{url}/p")
    with pytest.raises(weights.DownloadError, match="Connection refused"):  # offline: no cached card to fall back to
        keras_ae.model_card(f"{url}/p", timeout=1)
    assert files_in(cache) == []
