"""The wasm32 build in a real browser: headless Chromium loads sparsec.js from a localhost page and matches onnxruntime."""

from __future__ import annotations

import base64
import functools
import json
import shutil
import subprocess
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

import sparsec
import zoo
from conftest import max_rel_error, run_onnxruntime, write_raw_inputs

TOLERANCE = 1e-4  # max|sparsec - onnxruntime| / max|onnxruntime|
BROWSER_DIR = Path(__file__).parent / "browser"
REPO = Path(__file__).resolve().parent.parent


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request would bury pytest's output
        pass


@contextmanager
def serve(directory: Path):
    """Serves directory on 127.0.0.1 (an ephemeral port) from a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run_page(site: Path, page: str) -> dict:
    """Serves site (with the test page and its module) on localhost, opens page in headless Chromium and returns
    the page's window.sparsecResult."""
    # Missing tools fail rather than skip: .ci/run installs both.
    chromium = shutil.which("chromium")
    assert chromium, "chromium not found: apt-get install chromium"
    assert (REPO / "node_modules" / "playwright-core").is_dir(), "playwright-core not found: run `npm ci` in the repo root"
    node = shutil.which("node")
    assert node, "node not found: apt-get install nodejs (Node >= 20)"
    for name in (page.split("?")[0], "bytes.mjs"):
        shutil.copy(BROWSER_DIR / name, site)
    with serve(site) as url:
        run = subprocess.run([node, str(BROWSER_DIR / "run_page.mjs"), chromium, url + page],
                             capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert "HeadlessChrome" in result["userAgent"]
    return result


def test_mobilenet_v2_in_chromium_matches_onnxruntime(tmp_path):
    name = "mobilenet_v2"
    path = zoo.cached(name)
    site = tmp_path / "site"
    sparsec.compile(path, target="wasm32", output=site / "model.spx")
    feed = zoo.example_inputs(name)
    write_raw_inputs(feed, site)
    result = run_page(site, "index.html")

    ref = run_onnxruntime(path, feed)
    assert len(result["outputs"]) == len(ref)
    ours = [np.frombuffer(base64.b64decode(o["data"]), r.dtype).reshape(o["shape"]) for o, r in zip(result["outputs"], ref)]
    for a, r in zip(ours, ref):
        assert a.shape == r.shape
    error = max(max_rel_error(a, r) for a, r in zip(ours, ref))
    print(f"{name} in Chromium (wasm32): max relative error {error:.2e}")
    assert error < TOLERANCE
