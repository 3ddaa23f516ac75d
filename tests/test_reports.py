"""Reports and the index, in a real browser: headless Chromium (Debian's chromium and
chromium-driver, which `launch.sh install test` installs when run as root) renders a smoke
tour's gallery, a stage's report and the index of runs; every image must load and every link
must lead to a file that exists. The tour runs in a process that refuses to import torch (the
light install has none). Also what the pages say, checked without a browser."""
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from cnn_vis import report, runs
from cnn_vis.report import html as report_html

REPO = Path(__file__).resolve().parents[1]

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
needs_browser = pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM),
                                   reason="Debian's chromium and chromium-driver are not "
                                          "installed (bash launch.sh install test, as root)")

# Forces lazy images to load, waits for every image, then reports images and links.
PAGE_FACTS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(image => { image.loading = "eager"; });
Promise.all(images.map(image => image.complete ? null :
    new Promise(ready => { image.onload = image.onerror = ready; })))
  .then(() => done({
    title: document.title,
    images: images.map(image => [image.getAttribute("src"), image.naturalWidth]),
    links: Array.from(document.links).map(link => link.href),
    text: document.body.innerText}));
"""


class Browser:
  """Headless Chromium driven over the W3C WebDriver protocol (plain HTTP to chromedriver)."""

  def __init__(self, profile: Path):
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      self.port = s.getsockname()[1]
    self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
      try:
        if self._call("GET", "/status")["ready"]:
          break
      except OSError:
        time.sleep(0.1)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={profile}", "--window-size=1400,1000"]
    capabilities = {"capabilities": {"alwaysMatch": {
        "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
    self.session = self._call("POST", "/session", capabilities)["sessionId"]
    self._call("POST", f"/session/{self.session}/timeouts", {"script": 60000})

  def _call(self, method: str, path: str, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
      return json.loads(response.read())["value"]

  def facts(self, page: Path) -> dict:
    self._call("POST", f"/session/{self.session}/url", {"url": page.resolve().as_uri()})
    return self._call("POST", f"/session/{self.session}/execute/async",
                      {"script": PAGE_FACTS, "args": []})

  def close(self):
    try:
      self._call("DELETE", f"/session/{self.session}")
    finally:
      self.driver.terminate()
      self.driver.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
  chromium = Browser(tmp_path_factory.mktemp("chromium-profile"))
  yield chromium
  chromium.close()


def check_page(browser: Browser, page: Path) -> dict:
  """Renders page; fails on an image that did not load or a link to a missing file."""
  facts = browser.facts(page)
  assert facts["images"], f"{page} shows no image"
  broken = [src for src, width in facts["images"] if not width]
  assert not broken, f"{page}: images that did not load: {broken}"
  for href in facts["links"]:
    url = urllib.parse.urlparse(href)
    assert url.scheme == "file", f"{page}: link out of the run folder: {href}"
    assert Path(urllib.parse.unquote(url.path)).exists(), f"{page}: broken link {href}"
  return facts


NO_TORCH = textwrap.dedent("""
    import importlib.abc, sys
    BLOCKED = ("torch", "torchvision", "captum", "efficientnet_lite_pytorch")
    tried = []
    class Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
          tried.append(name)
          raise ImportError(f"{name} is blocked: the tour must not need torch")
    sys.meta_path.insert(0, Block())
    from cnn_vis import loader, main
    from configs import tour
    import experiments, importlib
    config = tour.get_config("smoke")
    config.stages = "predict;grad_cam;class_model"
    for name in config.stage:   # every experiment module a stage runs
      module = importlib.import_module(f"configs.{config.stage[name].config}")
      importlib.import_module(f"experiments.{module.get_config().experiment}")
    for model in ("squeezenet1_1", "efficientnet_lite0"):   # the readers of the published weights
      loader.load(model, pretrained=True)
    main.run(config, sys.argv[1])
    assert not tried, tried
    print("torch-free", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
""")


@pytest.fixture(scope="module")
def smoke_tour(tmp_path_factory):
  """A smoke tour of three families (an attribution, an optimisation) in a process where torch
  cannot be imported, with a fresh weight cache (the published files are read and converted
  without torch); then the index of it."""
  root = tmp_path_factory.mktemp("runs")
  env = dict(os.environ, PYTHONPATH=str(REPO), CNN_VIS_CACHE=str(root / ".cache"))
  result = subprocess.run([sys.executable, "-c", NO_TORCH, str(root / "tour")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1200, check=False)
  report.write_index(root)
  return root, result


@pytest.mark.slow
def test_nothing_on_the_tours_path_imports_torch(smoke_tour):
  root, result = smoke_tour
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "torch-free []"
  summary = json.loads((root / "tour" / "summary.json").read_text())
  assert summary["ok"] == 3 and summary["failed"] == 0



@pytest.mark.slow
@needs_browser
def test_the_gallery_a_stage_report_and_the_index_render_completely(smoke_tour, browser):
  root, result = smoke_tour
  assert result.returncode == 0, result.stderr[-3000:]
  gallery = check_page(browser, root / "tour" / "report.html")
  assert gallery["title"].startswith("A tour of understanding CNNs")
  for stage in ("predict", "grad_cam", "class_model"):
    assert any(href.endswith(f"/tour/{stage}/report.html") for href in gallery["links"]), stage
  assert "changed from the config's defaults" in gallery["text"]
  stage = check_page(browser, root / "tour" / "class_model" / "report.html")
  for text in ("git commit", "wall time", "configs/simonyan14_class_models.py:smoke",
               "stage 3 of 3 of the tour"):
    assert text in stage["text"], text
  index = check_page(browser, root / "index.html")
  assert len(index["images"]) == 4            # the tour and its three stages, a thumbnail each
  for name in ("tour/predict", "tour/grad_cam", "tour/class_model"):
    assert name in index["text"], name


@needs_browser
def test_the_browser_check_fails_on_a_missing_image_and_a_broken_link(tmp_path, browser):
  report.save_image(tmp_path / "there.png", np.zeros((8, 8, 3)))
  report.write_report(tmp_path, "broken", {}, [("s", [("ok", "there.png", None),
                                                        ("missing", "gone.png", None)])])
  with pytest.raises(AssertionError, match="images that did not load: \\['gone.png'\\]"):
    check_page(browser, tmp_path / "report.html")
  (tmp_path / "gone.png").write_bytes((tmp_path / "there.png").read_bytes())
  check_page(browser, tmp_path / "report.html")   # the thumbnail's link now leads somewhere
  (tmp_path / "there.png").unlink()
  with pytest.raises(AssertionError):
    check_page(browser, tmp_path / "report.html")


# ------------------------------------------------------------------ without a browser

def _run(workdir: Path, config: dict, summary: dict, fail: bool = False, picture=True):
  config = ml_collections.ConfigDict(config)
  try:
    with runs.Run(config, workdir) as run:
      if picture:
        report.save_image(run.dir / "x.png", np.full((20, 30, 3), 0.25))
      run.summary.update(summary)
      if fail:
        raise ValueError("diverged at step 3")
      report.write_report(run.dir, "t", config, [("s", [("x", "x.png" if picture else None,
                                                           None)])], summary=run.summary)
  except ValueError:
    pass


def test_the_index_has_a_row_per_run_with_its_facts(tmp_path):
  _run(tmp_path / "a", {"experiment": "attribution", "method": "grad_cam", "model": "m1"},
       {"method": "grad_cam", "model": "m1", "images": 2, "completeness_gap": 0.125})
  _run(tmp_path / "b", {"experiment": "class_model", "model": "m2"},
       {"mean_probability": 0.75}, fail=True)
  (tmp_path / "c").mkdir()
  runs.write_json(tmp_path / "c" / "status.json", {"status": "running", "pid": 2 ** 22 + 7,
                                                   "host": "elsewhere"})
  page = report.write_index(tmp_path).read_text()
  rows = {r["name"]: r for r in (report_html.run_row(tmp_path, d)
                                  for d in report_html.find_runs(tmp_path))}
  assert set(rows) == {"a", "b", "c"}
  assert rows["a"]["state"] == "ok" and rows["a"]["method"] == "grad_cam"
  assert rows["a"]["headline"] == "completeness_gap 0.125" and rows["a"]["seconds"] > 0
  assert rows["b"]["state"] == "failed" and rows["b"]["detail"] == "ValueError: diverged at step 3"
  assert rows["c"]["state"] == "running"
  assert "grad_cam" in page and "failed" in page and "diverged at step 3" in page
  assert page.count("<img ") == 1                   # a's thumbnail (b failed, c has none)
  assert (tmp_path / "index_thumbs").is_dir()


def test_a_running_status_whose_process_is_gone_shows_as_stopped(tmp_path):
  import platform   # pylint: disable=import-outside-toplevel
  runs.write_json(tmp_path / "status.json", {"status": "running", "pid": 2 ** 22 + 7,
                                             "host": platform.node()})
  state, detail = report_html.run_status(runs.read_json(tmp_path / "status.json"))
  assert state == "stopped" and "is gone" in detail


def test_a_sweep_gets_a_table_comparing_its_runs(tmp_path):
  for lr, accuracy in ((0.1, 0.5), (0.2, 0.625)):
    _run(tmp_path / f"lr={lr}", {"experiment": "train", "lr": lr}, {"accuracy": accuracy,
                                                                   "classes": ["a", "b"]})
  runs.write_json(tmp_path / "sweep.json", {"config": "configs/x.py", "executor": "local",
                                            "runs": [{"name": "lr=0.1", "overrides": {"lr": 0.1}},
                                                     {"name": "lr=0.2", "overrides": {"lr": 0.2}},
                                                     {"name": "lr=0.3", "overrides": {"lr": 0.3}}]})
  page = report.write_index(tmp_path).read_text()
  table = page[page.index("<table class='sweep'>"):]
  assert "configs/x.py (local executor)" in page
  for text in ("<th>lr</th>", "<th>accuracy</th>", "0.625", "lr=0.3</td><td>not started"):
    assert text in table, text


def test_headlines_prefer_named_figures_and_skip_counts():
  assert report_html.headline({"images": 4, "top1_accuracy": 0.5}) == ("top1_accuracy", "0.5")
  assert report_html.headline({"images": 4, "steps": 10}) == ("", "")
  assert report_html.headline({"headline": "loss", "loss": 2.5, "accuracy": 1.0}) == ("loss",
                                                                                     "2.5")
  assert report_html.headline({"mean_activation_fc8": 3.0}) == ("mean_activation_fc8", "3")


def test_a_labelled_grid_writes_the_whole_picture_and_shows_its_labels_as_text(tmp_path):
  tiles = [np.full((40, 60, 3), v) for v in (0.1, 0.5, 0.9)]
  picture, grid = report.labelled_grid(tmp_path, "panels/a.png", tiles,
                                       ["input", "map", "a long label: class 281 tabby cat"], 3)
  assert (tmp_path / "panels" / "a.png").is_file() and picture.shape[1] > 3 * 60
  assert sorted(p.name for p in (tmp_path / "tiles" / "panels" / "a").iterdir()) == [
      "000.png", "001.png", "002.png"]
  assert grid.href == "panels/a.png" and grid.columns == 3 and grid.width == 180  # 60 px, 3x
  page = report.write_report(tmp_path, "t", {}, [("panel", [("caption of the panel", grid,
                                                             "some text")])]).read_text()
  assert "<figcaption>a long label: class 281 tabby cat</figcaption>" in page
  assert '<img src="tiles/panels/a/002.png"' in page
  assert "all in one picture: <a href='panels/a.png'>" in page
  assert "<pre>some text</pre>" in page and "caption of the panel" in page
  assert report_html.tile_width([np.zeros((10, 2000, 3))], 5) == 1400 // 5


def test_grids_keep_labels_as_text_and_full_resolution_behind_thumbnails(tmp_path):
  images = np.random.default_rng(0).random((3, 16, 16, 3))
  grid = report_html.save_tiles(tmp_path, "tiles", images, ["tabby cat p=0.91", "b", "c"])
  big = np.zeros((900, 1200, 3))
  report.save_image(tmp_path / "big.png", big)
  page = report.write_report(tmp_path, "t", {}, [("grid", [grid]), ("big", [("b", "big.png",
                                                                              None)])]).read_text()
  assert "<figcaption>tabby cat p=0.91</figcaption>" in page
  assert '<a href="tiles/000.png"><img src="tiles/000.png" width="128" height="128" class="px"' \
      in page                                           # a 16 px tile shown 8x, pixelated
  assert '<a href="big.png"><img src="big.png" width="480" height="360"' in page
  assert (tmp_path / "tiles" / "002.png").exists()
