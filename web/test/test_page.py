"""The web page in a real browser (Debian's chromium and chromedriver, driven
by Selenium), against the native CLI: what it shows is what `segpack
inspect` says, and the file it gives is what `segpack pack` writes.

Run by scripts/test-web.sh, which builds the page and the native CLI and
sets the environment:

  SEGPACK_WEB        the built page (target/web)
  SEGPACK_NATIVE     the native segpack (target/release/segpack)
  SEGPACK_SAMPLE     a module (samples/snapshot.wasm)
  SEGPACK_COMPONENT  a component (../shared/corpus/hello.component.wasm)
  SEGPACK_SCREENSHOT where to save a screenshot of the page (optional)

The tests run in order, in one browser; the last one stops the server and
reloads the page, which must work offline.

Nothing here is skipped: a missing browser, driver or file fails the run.
"""

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WEB = Path(os.environ["SEGPACK_WEB"]).resolve()
NATIVE = os.environ["SEGPACK_NATIVE"]
SAMPLE = Path(os.environ["SEGPACK_SAMPLE"]).resolve()
COMPONENT = Path(os.environ["SEGPACK_COMPONENT"]).resolve()
SCREENSHOT = os.environ.get("SEGPACK_SCREENSHOT")
# Packing a 12 MiB component in WebAssembly on a busy 2-core machine.
TIMEOUT = 240


def native(*args, cwd):
    """The native CLI's stdout (its exit status must be 0)."""
    return subprocess.run(
        [NATIVE, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def native_error(*args, cwd):
    """The native CLI's error line (its exit status must be 1)."""
    r = subprocess.run([NATIVE, *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 1, f"segpack {args}: exit {r.returncode}, wanted 1"
    return r.stderr.strip()


def without_time(text):
    """The CLI's text without the run time that ends its last line."""
    return re.sub(r", [0-9.]+ s$", "", text.strip())


def serve(directory):
    """A static server for `directory` on a free port: its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".wasm": "application/wasm",
        }

        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


class Page(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server, cls.url = serve(WEB)
        cls.downloads = Path(tempfile.mkdtemp(prefix="segpack-web-downloads."))
        cls.files = Path(tempfile.mkdtemp(prefix="segpack-web-files."))
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=1000,1400", "--hide-scrollbars"):
            options.add_argument(arg)
        options.add_experimental_option("prefs", {
            "download.default_directory": str(cls.downloads),
            "download.prompt_for_download": False,
        })
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        cls.driver = webdriver.Chrome(options=options, service=Service(driver))
        cls.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(cls.downloads)})
        cls.driver.get(cls.url)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        cls.server.shutdown()
        shutil.rmtree(cls.downloads, ignore_errors=True)
        shutil.rmtree(cls.files, ignore_errors=True)

    # ---- helpers ----------------------------------------------------------

    def wait_for(self, condition, what, timeout=TIMEOUT):
        """Polls `condition()` until it is true; fails with the page's state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        state = self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        status = self.driver.find_element(By.ID, "status").text
        error = self.driver.find_element(By.ID, "error").get_attribute("textContent")
        self.fail(f"timed out waiting for {what}: state {state!r}, status {status!r}, error {error!r}")

    def state(self):
        return self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")

    def take(self, path):
        """Gives the page `path` through its file input, and waits for inspect."""
        self.driver.execute_script("document.body.dataset.state = 'test: sending a file'")
        self.driver.find_element(By.ID, "file").send_keys(str(path))
        self.wait_for(lambda: self.state() in ("inspected", "error"), f"{path.name} inspected")

    def select(self, id, value):
        self.driver.execute_script(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
            "s.dispatchEvent(new Event('change'));", id, value)

    def check_inspection(self, path, cap):
        """The table, the text and the map match `segpack inspect` at `cap`."""
        d = self.driver
        self.assertEqual(self.state(), "inspected", d.find_element(By.ID, "error").text)
        cwd, name = path.parent, path.name
        cap_args = ["--max-segments", str(cap)]
        report = json.loads(native("inspect", "--json", *cap_args, name, cwd=cwd))
        rows = d.find_elements(By.CSS_SELECTOR, "#memories tbody tr")
        expected = [(m, r) for m in report["modules"] for r in m["memories"] if r["segments"] > 0]
        self.assertEqual(len(rows), len(expected))
        self.assertGreater(len(rows), 0)
        for row, (module, memory) in zip(rows, expected):
            self.assertEqual(row.get_attribute("data-module"), module["path"])
            self.assertEqual(row.get_attribute("data-memory"), str(memory["memory"]))
            for c in row.find_elements(By.CSS_SELECTOR, "td[data-field]"):
                field = c.get_attribute("data-field")
                self.assertEqual(int(c.get_attribute("data-value")), memory[field], field)
        for field in ("data_bytes_before", "data_bytes_after", "input_bytes", "output_bytes"):
            shown = d.find_element(By.CSS_SELECTOR, f"#totals [data-field={field}]")
            self.assertEqual(int(shown.get_attribute("data-value")), report[field], field)
        text = d.find_element(By.ID, "inspect-text").get_attribute("textContent")
        self.assertEqual(without_time(text), without_time(native("inspect", *cap_args, name, cwd=cwd)))
        # The map is the CLI's own SVG: the same elements, attributes, text.
        shown = ET.fromstring(d.find_element(By.CSS_SELECTOR, "#map svg").get_attribute("outerHTML"))
        svg = ET.fromstring(native("inspect", "--svg", *cap_args, name, cwd=cwd))
        self.assertEqual(
            [(e.tag, e.attrib, (e.text or "").strip()) for e in svg.iter()],
            [(e.tag, e.attrib, (e.text or "").strip()) for e in shown.iter()],
        )
        self.assertGreater(len(svg.findall(".//{http://www.w3.org/2000/svg}rect")), 3)

    def pack_and_download(self, path, cap, optimize_for):
        """Packs on the page, downloads through its link, compares with the CLI."""
        d = self.driver
        for f in self.downloads.iterdir():
            f.unlink()
        d.find_element(By.ID, "pack").click()
        self.wait_for(lambda: self.state() in ("packed", "error"), f"{path.name} packed")
        self.assertEqual(self.state(), "packed", d.find_element(By.ID, "error").text)
        link = d.find_element(By.ID, "download")
        name = link.get_attribute("download")
        link.click()
        target = self.downloads / name
        self.wait_for(lambda: target.exists() and not any(
            f.suffix == ".crdownload" for f in self.downloads.iterdir()), f"{name} downloaded", 60)
        got = hashlib.sha256(target.read_bytes()).hexdigest()
        out = self.files / "native.wasm"
        native("pack", "--max-segments", str(cap), "--optimize-for", optimize_for,
               path.name, "-o", str(out), cwd=path.parent)
        want = hashlib.sha256(out.read_bytes()).hexdigest()
        self.assertEqual(got, want, f"{name}: the page's bytes differ from segpack pack's")
        self.assertEqual(d.find_element(By.ID, "sha256").text, want)
        self.assertNotEqual(target.read_bytes(), path.read_bytes(), "packing changed nothing")

    # ---- the tests, in order ------------------------------------------------

    def test_1_the_page_loads(self):
        self.wait_for(lambda: self.state() == "ready", "the page to start", 30)
        self.assertIn("Drop or pick", self.driver.find_element(By.ID, "status").text)
        self.assertEqual(self.driver.title.split(":")[0], "segpack")

    def test_2_the_sample(self):
        self.take(SAMPLE)
        self.check_inspection(SAMPLE, 10000)
        self.pack_and_download(SAMPLE, 10000, "raw")
        # The plot's numbers are inspect --compressed's, cap by cap.
        self.wait_for(lambda: self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-sweep") == "done",
                      "the plot")
        for cap in (100, 10000):
            want = json.loads(native("inspect", "--json", "--compressed", "gzip", "--max-segments",
                                     str(cap), SAMPLE.name, cwd=SAMPLE.parent))["compressed"]
            row = self.driver.find_element(By.CSS_SELECTOR, f"#sweep tr[data-cap='{cap}']")
            value = lambda f: int(row.find_element(By.CSS_SELECTOR, f"[data-field={f}]").get_attribute("data-value"))
            self.assertEqual(value("raw"), want["default"]["bytes"])
            self.assertEqual(value("raw_compressed"), want["default"]["compressed_bytes"])
            self.assertEqual(value("optimized"), want["optimized"]["bytes"])
            self.assertEqual(value("optimized_compressed"), want["optimized"]["compressed_bytes"])
        self.assertEqual(len(self.driver.find_elements(By.CSS_SELECTOR, "#plot svg path")), 4)
        if SCREENSHOT:
            self.driver.execute_script("document.querySelector('#results details').open = false")
            png = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1000, "height": 1240, "scale": 0.62}})["data"]
            Path(SCREENSHOT).write_bytes(base64.b64decode(png))
        # Another setting: a lower cap, packed for gzip.
        self.select("cap", "1000")
        self.wait_for(lambda: self.state() == "inspected", "the sample at --max-segments 1000")
        self.check_inspection(SAMPLE, 1000)
        self.select("optimize-for", "gzip")
        self.pack_and_download(SAMPLE, 1000, "gzip")

    def test_3_a_component(self):
        self.select("cap", "10000")
        self.select("optimize-for", "raw")
        self.take(COMPONENT)
        self.check_inspection(COMPONENT, 10000)
        # The cap binds for this component: the page says what a higher one gives.
        self.assertIn("--max-segments 100,000 would give",
                      self.driver.find_element(By.ID, "totals").text)
        self.select("cap", "100000")
        self.wait_for(lambda: self.state() == "inspected", "the component at --max-segments 100000")
        self.pack_and_download(COMPONENT, 100000, "raw")

    def test_4_not_wasm_gets_the_clis_message(self):
        notes = self.files / "notes.txt"
        notes.write_text("hello, this is not WebAssembly\n")
        self.take(notes)
        self.assertEqual(self.state(), "error")
        shown = self.driver.find_element(By.ID, "error").text
        self.assertEqual(shown, native_error("inspect", notes.name, cwd=notes.parent))
        self.assertIn("is not a WebAssembly binary", shown)

    def test_5_no_browser_errors(self):
        logs = self.driver.get_log("browser")
        self.assertEqual([l for l in logs if l["level"] == "SEVERE"], [])
        # Every system call the CLI made was one the shim knows.
        self.assertEqual([l for l in logs if "unsupported WASI" in l["message"]], [])

    def test_6_offline_once_loaded(self):
        # The server goes away; the service worker still has every file.
        self.server.shutdown()
        self.server.server_close()
        self.driver.refresh()
        self.wait_for(lambda: self.state() == "ready", "the page to start offline", 30)
        self.take(SAMPLE)
        self.check_inspection(SAMPLE, 10000)


if __name__ == "__main__":
    unittest.main(verbosity=2, failfast=True)
